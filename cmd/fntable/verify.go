package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/functable/remote"
	"github.com/fntable/fntable/internal/procmaps"
	"github.com/fntable/fntable/internal/procmem"
	"github.com/fntable/fntable/provider"
	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
	"github.com/fntable/fntable/verify"
)

func newVerifyCmd() *command {
	c := &command{
		name:    "verify",
		args:    "[--json] [--max-problems N] [provider flags] (IMAGE | --pid PID | -)",
		summary: "check that unwind information describes the machine code",
		help: `
Verify checks every function table entry of a PE32+ x64 image (IMAGE), of
the dynamic function tables a running process publishes (--pid PID: code
and UNWIND_INFO read from the process, callback tables through their
trusted providers, see "fntable providers -h"; the process is not
stopped, so JIT code that changes meanwhile may be reported), or of the
JIT code described on standard input (-): each unwind code against the
prolog instruction ending at its offset, every exit against the epilog
rules of the Windows unwinder, and, at every instruction boundary, the
unwinder's result against a symbolic execution of the code. It also checks
the table: sorted, not overlapping, chains and handlers.

Text output is one line per problem:
  0x1234 fn+0x5: SAVE_NONVOL rbx at 0x30, but the instruction is mov [rsp+0x38], rbx
where 0x1234 is the address of the entry and 0x5 the offset in it.
With --json the output is one object:
  {"functions":N,"instructions":N,"problems":[{"function":"0x...",
   "offset":N,"kind":"...","message":"..."}]}
Kinds are stable strings (code-mismatch, code-offset, missing-code,
extra-code, code-order, prolog-size, epilog, epilog-restore, v2-epilog,
fragment-epilog, prolog-epilog, tail-jump, split-jump, unwind-mismatch,
unwind-info, instruction, table-order, table-overlap, table-range, chain,
handler). fragment-epilog, prolog-epilog, tail-jump and split-jump name
patterns compilers emit that the unwinder gets wrong at a few
instructions only: an epilog in a chained entry without codes of its own
or inside SizeOfProlog, an indirect tail jump without REX.W, a jump into
or out of a split part (GCC's .cold) that is not chained.

Input for "-": JSON lines, each one code region with its table:
  {"base": "0x...",                        image or table base address
   "code_address": "0x...",                address of the code (default base)
   "code": "<hex>",                        the code bytes
   "functions": [{"begin": "0x...", "end": "0x...", "unwind_data": "0x..."}],
                                           RUNTIME_FUNCTIONs, RVAs from base
   "unwind_info": [{"rva": "0x...", "bytes": "<hex>"}]}
                                           UNWIND_INFO blocks (and any other
                                           bytes the entries refer to)
The exit status is 1 when a problem is found.`,
	}
	c.run = func(args []string, stdout, stderr io.Writer) error {
		fs := c.flagSet()
		asJSON := fs.Bool("json", false, "write one JSON object instead of text")
		maxProblems := fs.Int("max-problems", 0, "stop after `N` problems (0: no limit)")
		pid := fs.Int("pid", 0, "verify the dynamic function tables of process `PID`")
		var pf providerFlags
		pf.register(fs)
		if err := c.parse(fs, args, stdout); err != nil {
			return err
		}
		if *maxProblems < 0 {
			return c.usagef("--max-problems must not be negative")
		}
		if (*pid > 0) == (fs.NArg() == 1) || fs.NArg() > 1 {
			return c.usagef("want one IMAGE, --pid PID, or -")
		}
		var rep verify.Report
		var err error
		if *pid > 0 {
			var r *provider.Resolver
			if r, err = pf.resolver(stderr); err != nil {
				return err
			}
			var p remote.Provider
			if r != nil {
				p = r
			}
			rep, err = verifyProcess(*pid, p, *maxProblems, stderr)
		} else if fs.Arg(0) == "-" {
			rep, err = verifyLines(os.Stdin, *maxProblems)
		} else {
			rep, err = verifyImage(fs.Arg(0), *maxProblems)
		}
		if err != nil {
			return err
		}
		if *asJSON {
			b, err := json.Marshal(rep)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s\n", b)
		} else if err := rep.WriteText(stdout); err != nil {
			return err
		}
		if len(rep.Problems) > 0 {
			return fmt.Errorf("%s in %s checked", count(len(rep.Problems), "problem", "problems"), count(rep.Functions, "function", "functions"))
		}
		return nil
	}
	return c
}

// verifyProcess checks the dynamic function tables process pid publishes:
// every table of every list, callback tables through p (nil: skipped),
// with code and unwind information read from the process.
func verifyProcess(pid int, p remote.Provider, maxProblems int, stderr io.Writer) (verify.Report, error) {
	rep := verify.Report{Problems: []verify.Problem{}}
	// One read of the maps gives both the published lists and the
	// executable mappings.
	maps, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/maps")
	if err != nil {
		return rep, fmt.Errorf("read the mappings of process %d: %w", pid, err)
	}
	lists, err := remote.ParseMaps(bytes.NewReader(maps))
	if err != nil {
		return rep, fmt.Errorf("find function table lists of process %d: %w", pid, err)
	}
	exec := procmaps.ExecutableRanges(maps).Contains
	mem, err := procmem.Open(pid)
	if err != nil {
		return rep, err
	}
	defer mem.Close()
	for _, m := range lists {
		snap, err := remote.Read(mem, m)
		if err != nil {
			return rep, err
		}
		if p != nil {
			snap.UseProvider(pid, p)
		}
		c := verify.Checker{Memory: mem, Functions: snap, Executable: exec, MaxProblems: maxProblems}
		for i := range snap.Tables {
			t := &snap.Tables[i]
			entries := t.Entries
			if t.Type == functable.RF_CALLBACK {
				res := snap.Resolve(t)
				if res.Err != nil {
					fmt.Fprintf(stderr, "fntable: callback table %#x not verified: %v\n", t.FunctionTable, res.Err)
					continue
				}
				_, entries, _ = t.Resolution()
			}
			hi := uint32(0)
			if span := t.MaximumAddress - t.BaseAddress; t.MaximumAddress > t.BaseAddress && span <= 1<<32-1 {
				hi = uint32(span)
			}
			r, err := c.Table(t.BaseAddress, entries, uint32(t.MinimumAddress-t.BaseAddress), hi)
			if err != nil {
				return rep, fmt.Errorf("table %#x: %w", t.Record, err)
			}
			rep.Add(r)
		}
	}
	return rep, nil
}

// verifyImage checks a PE image file.
func verifyImage(name string, maxProblems int) (verify.Report, error) {
	fh, err := os.Open(name)
	if err != nil {
		return verify.Report{}, err
	}
	defer fh.Close()
	rep, err := verify.Image(fh, maxProblems)
	return rep, fileError(name, err)
}

// verifyInput is one line of "fntable verify -".
type verifyInput struct {
	Base        string `json:"base"`
	CodeAddress string `json:"code_address"`
	Code        string `json:"code"`
	Functions   []struct {
		Begin      string `json:"begin"`
		End        string `json:"end"`
		UnwindData string `json:"unwind_data"`
	} `json:"functions"`
	UnwindInfo []struct {
		RVA   string `json:"rva"`
		Bytes string `json:"bytes"`
	} `json:"unwind_info"`
}

// verifyLines checks the code regions read as JSON lines from r.
func verifyLines(r io.Reader, maxProblems int) (verify.Report, error) {
	total := verify.Report{Problems: []verify.Problem{}}
	lr := newLineReader(r, maxLine)
	line := 0
	for {
		b, tooLong, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return total, err
		}
		line++
		if tooLong {
			return total, fmt.Errorf("line %d: longer than %d MiB", line, maxLine>>20)
		}
		text := strings.TrimSpace(string(b))
		if text == "" {
			continue
		}
		var in verifyInput
		if err := decodeJSONLine(text, &in); err != nil {
			return total, fmt.Errorf("line %d: %w", line, requestError(err))
		}
		mem, base, fns, err := in.load()
		if err != nil {
			return total, fmt.Errorf("line %d: %w", line, err)
		}
		c := &verify.Checker{Memory: mem}
		if maxProblems > 0 {
			c.MaxProblems = maxProblems - len(total.Problems)
		}
		rep, err := c.Table(base, fns, 0, 0)
		if err != nil {
			return total, fmt.Errorf("line %d: %w", line, err)
		}
		total.Add(rep)
		if total.Truncated {
			break
		}
	}
	return total, nil
}

func (in *verifyInput) load() (*unwind.SplicedMemory, uint64, []unwindinfo.RuntimeFunction, error) {
	base, err := parseHex("base", in.Base)
	if err != nil {
		return nil, 0, nil, err
	}
	codeAddr := base
	if in.CodeAddress != "" {
		if codeAddr, err = parseHex("code_address", in.CodeAddress); err != nil {
			return nil, 0, nil, err
		}
	}
	code, err := hex.DecodeString(in.Code)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("code: %w", err)
	}
	mem := new(unwind.SplicedMemory)
	mem.Add(codeAddr, code)
	for i, u := range in.UnwindInfo {
		rva, err := parseHex(fmt.Sprintf("unwind_info[%d].rva", i), u.RVA)
		if err != nil {
			return nil, 0, nil, err
		}
		b, err := hex.DecodeString(u.Bytes)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("unwind_info[%d].bytes: %w", i, err)
		}
		mem.Add(base+rva, b)
	}
	var fns []unwindinfo.RuntimeFunction
	for i, f := range in.Functions {
		var v [3]uint64
		for k, s := range []string{f.Begin, f.End, f.UnwindData} {
			if v[k], err = parseHex(fmt.Sprintf("functions[%d]", i), s); err != nil {
				return nil, 0, nil, err
			}
			if v[k] > 0xffffffff {
				return nil, 0, nil, fmt.Errorf("functions[%d]: rva %#x does not fit 32 bits", i, v[k])
			}
		}
		fns = append(fns, unwindinfo.RuntimeFunction{BeginAddress: uint32(v[0]), EndAddress: uint32(v[1]), UnwindData: uint32(v[2])})
	}
	return mem, base, fns, nil
}

func parseHex(what, s string) (uint64, error) {
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(s), "0x"), 16, 64)
	if err != nil || !strings.HasPrefix(strings.ToLower(s), "0x") {
		return 0, fmt.Errorf("%s: %q is not a 0x-prefixed hexadecimal number", what, s)
	}
	return v, nil
}
