package main

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/term"

	"github.com/fntable/fntable/capture"
	"github.com/fntable/fntable/functable/remote"
)

func newDumpCmd() *command {
	c := &command{
		name:    "dump",
		args:    "[--full] [-o FILE] [provider flags] PID",
		summary: "write a minidump of a running process that keeps its function tables, for offline walks",
		help: `
Dump stops the process PID, gathers what its stacks need to be walked
later, resumes it, and writes a minidump (default PID.dmp): its threads
with their registers and names, its modules (the files it maps, with
their ELF build IDs), its memory, the Breakpad Linux streams
(/proc/PID/maps, status, auxv, cmdline, environ, /proc/cpuinfo,
/etc/lsb-release) and, in the function table stream (13), every dynamic
function table of its published lists. A callback table's entries come
from the provider library it names, loaded only if the trust list allows
(see "fntable providers -h"), as MiniDumpWriteDump calls
OutOfProcessFunctionTableCallback. The process's perf map
(/tmp/perf-PID.map) is kept too, in a stream of fntable's own
(0x46540001): stack and sym name JIT frames from it offline.

The memory kept, without --full: each thread's stack from RSP-128 up, at
most 256 KiB; everything the stack walker read walking each thread at
capture time; 256 bytes of code each side of every frame's PC; the
UNWIND_INFO every table entry points to; the published lists; the ELF
headers of the modules and the whole vDSO. A dump of a few threads is
some hundred KiB. With --full every readable mapping is kept instead.

Walk the dump with "fntable stack FILE.dmp" and list its tables with
"fntable tables FILE.dmp", on this machine or another one (the modules'
call-frame information is read from their files, found by path or by
build ID along --symbol-path).

The process is stopped while the dump is gathered (and, with --full,
while it is written) and always resumed, also after errors and when
this command is interrupted or killed. The file is written to an unnamed
temporary file (O_TMPFILE; a hidden ".FILE.tmp" name where the file
system has none) and renamed when complete: a process that dies during
the capture, a full disk, this command killed (even by SIGKILL) or any
other failure leaves no file. A progress bar is drawn on
standard error when it is a terminal; the file, its size and what it
holds are printed when done.`,
	}
	c.run = func(args []string, stdout, stderr io.Writer) error {
		fs := c.flagSet()
		full := fs.Bool("full", false, "keep every readable mapping (a full-memory dump)")
		out := fs.String("o", "", "write the dump to `FILE` (default PID.dmp)")
		var pf providerFlags
		pf.register(fs)
		if err := c.parse(fs, args, stdout); err != nil {
			return err
		}
		pid, err := c.parsePID(fs.Args())
		if err != nil {
			return err
		}
		name := *out
		if name == "" {
			name = strconv.Itoa(pid) + ".dmp"
		}
		resolver, err := pf.resolver(stderr)
		if err != nil {
			return err
		}
		opts := capture.Options{
			Full:              *full,
			LazySignalHandler: true, // as for fntable stack (walkProcess)
			Logf:              func(format string, args ...any) { fmt.Fprintf(stderr, "fntable: "+format+"\n", args...) },
		}
		if resolver != nil {
			opts.Provider = remote.Provider(resolver)
		}
		var pb *bar
		if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			opts.Progress = func(written, total int64) {
				if pb == nil {
					pb = newBar(stderr, "writing "+name, total)
				}
				pb.set(written)
			}
		}
		sum, err := capture.WriteFile(pid, name, opts)
		if pb != nil {
			pb.clear()
		}
		if err != nil {
			return err
		}
		writeDumpSummary(stdout, name, sum)
		return nil
	}
	return c
}

// writeDumpSummary says what the dump written to name holds.
func writeDumpSummary(w io.Writer, name string, s *capture.Summary) {
	kind := "minidump"
	if s.Full {
		kind = "full-memory minidump"
	}
	fmt.Fprintf(w, "wrote %s: %s of process %d, %s\n", name, kind, s.Pid, byteSize(s.Size))
	fmt.Fprintf(w, "  %s, %s, %s of memory in %s\n", count(s.Threads, "thread", "threads"), count(s.Modules, "module", "modules"),
		byteSize(int64(s.MemoryBytes)), count(s.Ranges, "range", "ranges"))
	fmt.Fprintf(w, "  %s, %s", count(s.Tables, "dynamic function table", "dynamic function tables"), count(s.Entries, "entry", "entries"))
	if s.Unresolved > 0 {
		fmt.Fprintf(w, " (%s without entries: provider not trusted or not loaded)", count(s.Unresolved, "callback table", "callback tables"))
	}
	fmt.Fprintln(w)
	perf := ""
	if s.PerfMap > 0 {
		perf = ", its perf map (" + byteSize(int64(s.PerfMap)) + ")"
	}
	fmt.Fprintf(w, "  %s%s; the process was stopped for %.1f ms\n", count(s.Streams, "Breakpad Linux stream", "Breakpad Linux streams"), perf, float64(s.Stopped.Microseconds())/1000)
}

// byteSize formats n bytes for people.
func byteSize(n int64) string {
	switch {
	case n >= 10<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 10<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
