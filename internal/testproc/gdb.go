package testproc

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fntable/fntable/internal/testenv"
)

// OracleFrame is one frame of a thread's stack as an oracle (gdb or
// eu-stack) reports it. Frames are listed innermost first.
//
// PC and SP mean what they mean in gdb's frame model, which is also what
// a walker that unwinds from the thread's registers produces:
//
//   - Frame 0: PC is the thread's RIP and SP its RSP, as the kernel saved
//     them (for a thread blocked in a system call, PC is the instruction
//     after the syscall instruction).
//   - Frame i > 0: PC is the return address into the function of frame i,
//     as found on the stack, not minus 1 (the function name is looked up
//     at PC−1, so a call at the very end of a function names it right).
//     SP is the RSP the caller has once that call returns, which is the
//     canonical frame address (CFA) of frame i−1: for a frame reached
//     through a signal frame, the RSP saved in the signal context.
//
// gdb adds frames that have no stack frame of their own: inline frames
// (Inline, Type "inline"), which have the PC and SP of the frame after
// them, and tail-call frames (Type "tailcall"), which gdb synthesises from
// DWARF call-site information and which have the SP of the frame after
// them. [Physical] removes both. A frame of Type "sigtramp" is the signal
// trampoline (__restore_rt, "<signal handler called>"); its SP is the
// handler's CFA, on the signal stack, and the frame after it is the
// interrupted one, whose PC and SP come from the signal context, so they
// can lie on a different stack (sigaltstack).
type OracleFrame struct {
	PC uint64 // frame 0: RIP; outer frames: return address
	SP uint64 // frame 0: RSP; outer frames: CFA of the frame before (RSP after the return); 0 if the oracle gives none
	// BP is RBP in the frame as gdb unwinds it (frame 0: the thread's
	// RBP; outer frames: the value restored from where the inner frames
	// saved it), or 0 when gdb does not know it; eu-stack: 0.
	BP   uint64
	Func string // function name as the oracle gives it; "" when unknown
	Lib  string // gdb: path of the shared library holding PC, "" for the executable or unknown code; eu-stack: ""
	Type string // gdb's frame type: "normal", "inline", "tailcall", "sigtramp", "arch", ...; eu-stack: ""
	// Inline marks gdb's inline frames (Type "inline").
	Inline bool
	// Stop is set on the last frame of a thread only: why the oracle
	// stopped after it. For gdb it is gdb's unwind stop reason
	// ("outermost" at the end of a complete stack; for example
	// "previous frame inner to this frame (corrupt stack?)" or
	// "previous frame identical to this frame (corrupt stack?)" when it
	// gave up); for eu-stack, its error message for the thread, or
	// "outermost" when it reported none.
	Stop string
}

// Physical returns the frames that correspond to stack frames: frames
// without gdb's inline and tail-call frames. It keeps Stop on the last
// frame.
func Physical(frames []OracleFrame) []OracleFrame {
	var out []OracleFrame
	stop := ""
	for _, f := range frames {
		if f.Stop != "" {
			stop = f.Stop
		}
		if f.Inline || f.Type == "inline" || f.Type == "tailcall" {
			continue
		}
		out = append(out, f)
	}
	if len(out) > 0 && stop != "" {
		out[len(out)-1].Stop = stop
	}
	return out
}

// gdbScript is the Python script gdb runs in the target.
//
//go:embed gdbstacks.py
var gdbScript []byte

// gdbMarker starts the line of the script's output that holds the stacks.
const gdbMarker = "FNTABLE-GDB-STACKS "

// oracleTimeout bounds one run of gdb or eu-stack.
const oracleTimeout = 2 * time.Minute

// GDBStacks attaches gdb to process pid (gdb -batch -p PID, without
// init files, debuginfod or auto-loaded scripts, with backtrace past-main
// and past-entry on), collects every thread's frames with the Python
// script gdbstacks.py, detaches, and returns the frames by Linux thread
// ID. When gdb cannot unwind a frame it stops there: the thread's last
// frame then has a Stop that is not "outermost".
//
// GDBStacks checks that gdb detached: the process's TracerPid must be 0
// within a few seconds of gdb's exit. The process stays stopped only while
// gdb runs. If gdb is missing, the test is skipped (or fails under CI).
func GDBStacks(t testing.TB, pid int) (map[int][]OracleFrame, error) {
	t.Helper()
	gdb := testenv.Tool(t, "gdb")
	script := filepath.Join(t.TempDir(), "gdbstacks.py")
	if err := os.WriteFile(script, gdbScript, 0o644); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), oracleTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, gdb, "-nx", "-batch",
		"-iex", "set debuginfod enabled off",
		"-iex", "set auto-load python-scripts off",
		"-iex", "set pagination off",
		"-ex", "set backtrace past-main on",
		"-ex", "set backtrace past-entry on",
		"-p", strconv.Itoa(pid),
		"-x", script)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if err := waitUntraced(pid, 5*time.Second); err != nil {
		return nil, fmt.Errorf("gdb did not detach: %v", err)
	}
	var js []byte
	for line := range strings.Lines(stdout.String()) {
		if rest, ok := strings.CutPrefix(line, gdbMarker); ok {
			js = []byte(rest)
		}
	}
	if js == nil {
		return nil, fmt.Errorf("gdb -p %d: no stacks (%v); stderr:\n%s", pid, runErr, tail(stderr.Bytes()))
	}
	type jsonFrame struct {
		PC    uint64 `json:"pc"`
		SP    uint64 `json:"sp"`
		BP    uint64 `json:"bp"`
		SPErr string `json:"sperr"`
		Func  string `json:"func"`
		Lib   string `json:"lib"`
		Type  string `json:"type"`
		Stop  string `json:"stop"`
	}
	var raw map[string][]jsonFrame
	if err := json.Unmarshal(js, &raw); err != nil {
		return nil, fmt.Errorf("gdb -p %d: decode the script's output: %v", pid, err)
	}
	out := make(map[int][]OracleFrame, len(raw))
	for k, frames := range raw {
		tid, err := strconv.Atoi(k)
		if err != nil {
			return nil, fmt.Errorf("gdb -p %d: bad thread id %q", pid, k)
		}
		fs := make([]OracleFrame, len(frames))
		for i, f := range frames {
			fs[i] = OracleFrame{PC: f.PC, SP: f.SP, BP: f.BP, Func: f.Func, Lib: f.Lib, Type: f.Type, Inline: f.Type == "inline", Stop: f.Stop}
		}
		out[tid] = fs
	}
	return out, nil
}

// tail returns the last few KB of b, for error messages.
func tail(b []byte) []byte {
	const max = 4 << 10
	if len(b) > max {
		return b[len(b)-max:]
	}
	return b
}

// Funcs returns the function names of frames, for messages and
// comparisons.
func Funcs(frames []OracleFrame) []string {
	names := make([]string, len(frames))
	for i, f := range frames {
		names[i] = f.Func
	}
	return names
}

// Format renders frames one per line, as "#i pc sp func [lib] [type]
// [stop: reason]", for test logs.
func Format(frames []OracleFrame) string {
	var b strings.Builder
	for i, f := range frames {
		fmt.Fprintf(&b, "#%-3d %#014x %#014x %s", i, f.PC, f.SP, f.Func)
		if f.Lib != "" {
			fmt.Fprintf(&b, " [%s]", filepath.Base(f.Lib))
		}
		if f.Type != "" && f.Type != "normal" {
			fmt.Fprintf(&b, " (%s)", f.Type)
		}
		if f.Stop != "" {
			fmt.Fprintf(&b, " stop: %s", f.Stop)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
