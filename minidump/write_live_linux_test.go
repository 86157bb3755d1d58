package minidump_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/internal/testproc"
	"github.com/fntable/fntable/minidump"
	"github.com/fntable/fntable/target"
	"github.com/fntable/fntable/target/dump"
	"github.com/fntable/fntable/target/live"
	"github.com/fntable/fntable/unwind"
)

// liveCapture is a dump's content taken from a stopped child process,
// with the bytes its memory sources read, for comparisons.
type liveCapture struct {
	content *minidump.Content
	pid     int
	ctx     map[uint32]unwind.Context
	bytes   map[uint64][]byte // by the address of each source
	text    uint64            // an address of the main executable's code in the memory list
}

// captureLive starts threads.c (main and two workers), stops it and
// builds a Content of its real registers, stacks, modules and a page of
// its code. The process is resumed when the test ends.
func captureLive(t *testing.T) *liveCapture {
	t.Helper()
	bin := testproc.BuildC(t, testproc.CVariant{Opt: "-O1", FramePointers: true})
	p := testproc.Start(t, bin, "-n", "2", "-d", "3")
	st, err := live.Stop(p.Pid, live.StopOptions{Logf: t.Logf})
	if err != nil {
		t.Fatalf("stop %d: %v", p.Pid, err)
	}
	t.Cleanup(func() { st.Close() })
	threads, err := st.Threads()
	if err != nil {
		t.Fatal(err)
	}
	lc := &liveCapture{pid: p.Pid, ctx: map[uint32]unwind.Context{}, bytes: map[uint64][]byte{}}
	c := &minidump.Content{ProcessID: uint32(p.Pid), TimeDateStamp: 1700000000}
	read := func(b []byte, addr uint64) (int, error) { return st.ReadMemory(b, addr) }
	for _, th := range threads {
		if th.Err != nil {
			t.Fatalf("thread %d: %v", th.ID, th.Err)
		}
		ctx := unwind.Context{ContextFlags: unwind.CONTEXT_FULL | unwind.CONTEXT_SEGMENTS}
		if err := st.ThreadContext(th.ID, &ctx); err != nil {
			t.Fatal(err)
		}
		// The stack from the stack pointer up, at most 32 KiB, as much as
		// can be read.
		lo := ctx.Rsp &^ 0xf
		hi := (lo + 32<<10) &^ 0xfff
		var stack []byte
		for ; hi > lo; hi -= 0x1000 {
			b := make([]byte, hi-lo)
			if n, _ := st.ReadMemory(b, lo); n == len(b) {
				stack = b
				break
			}
		}
		if stack == nil {
			t.Fatalf("thread %d: cannot read its stack at %#x", th.ID, lo)
		}
		lc.ctx[uint32(th.ID)] = ctx
		lc.bytes[lo] = stack
		c.Threads = append(c.Threads, minidump.WriteThread{ID: uint32(th.ID), Context: ctx.MarshalWindows(), Name: th.Name,
			Stack: minidump.MemorySource{Addr: lo, Size: uint64(len(stack)), Read: read}})
	}
	err = st.Modules(func(m target.Module) bool {
		wm := minidump.WriteModule{Base: m.Base, Size: m.Size, Name: m.Path}
		if wm.Name == "" {
			wm.Name = m.Name
		}
		if len(m.BuildID) > 0 {
			wm.CodeView = minidump.ELFCodeView(m.BuildID)
		}
		c.Modules = append(c.Modules, wm)
		if m.Path == bin && lc.text == 0 {
			lc.text = m.Base
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if lc.text == 0 {
		t.Fatalf("no module %s among %+v", bin, c.Modules)
	}
	page := make([]byte, 0x1000)
	if n, err := st.ReadMemory(page, lc.text); n != len(page) {
		t.Fatalf("read %#x: %v", lc.text, err)
	}
	lc.bytes[lc.text] = page
	c.Memory = append(c.Memory, minidump.MemorySource{Addr: lc.text, Size: 0x1000, Read: read})
	// The main thread's stack again, as a full-memory capture lists it:
	// written once.
	c.Memory = append(c.Memory, c.Threads[0].Stack)

	var u syscall.Utsname
	syscall.Uname(&u)
	str := func(b [65]int8) string {
		var s []byte
		for _, c := range b {
			if c == 0 {
				break
			}
			s = append(s, byte(c))
		}
		return string(s)
	}
	c.SystemInfo = minidump.WriteSystemInfo{PlatformID: minidump.MD_OS_LINUX, MajorVersion: 6,
		CSDVersion:         strings.Join([]string{str(u.Sysname), str(u.Release), str(u.Version), str(u.Machine)}, " "),
		NumberOfProcessors: 1}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "vendor_id" {
				copy(c.SystemInfo.VendorID[:], strings.TrimSpace(v))
				break
			}
		}
		c.Streams = append(c.Streams, minidump.RawStream{Type: minidump.BreakpadLinuxCPUInfoStream, Data: b})
	}
	for typ, file := range map[minidump.StreamType]string{minidump.BreakpadLinuxMapsStream: "maps", minidump.BreakpadLinuxProcStatusStream: "status",
		minidump.BreakpadLinuxCmdLineStream: "cmdline", minidump.BreakpadLinuxAuxvStream: "auxv"} {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", p.Pid, file)); err == nil {
			c.Streams = append(c.Streams, minidump.RawStream{Type: typ, Data: b})
		}
	}
	slices.SortFunc(c.Streams, func(a, b minidump.RawStream) int { return int(a.Type) - int(b.Type) })
	lc.content = c
	return lc
}

func TestWriteLive(t *testing.T) {
	lc := captureLive(t)
	for _, full := range []bool{false, true} {
		t.Run(fmt.Sprintf("full=%v", full), func(t *testing.T) {
			name := t.TempDir() + "/live.dmp"
			if err := minidump.WriteFile(name, lc.content, minidump.WriteOptions{Full: full}); err != nil {
				t.Fatal(err)
			}
			checkDump(t, lc, name)
			checkLLDB(t, lc, name)
			if !full {
				checkObj2yaml(t, lc, name) // obj2yaml 14 shows a Memory64List as raw bytes
			}
		})
	}
}

// checkDump reads the dump back with target/dump: threads, registers,
// modules and memory.
func checkDump(t *testing.T, lc *liveCapture, name string) {
	d, err := dump.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	threads, err := d.Threads()
	if err != nil {
		t.Fatal(err)
	}
	if len(threads) != len(lc.content.Threads) || threads[0].ID != lc.pid {
		t.Errorf("dump threads %+v, want %d starting with %d", threads, len(lc.content.Threads), lc.pid)
	}
	for _, th := range threads {
		want, ok := lc.ctx[uint32(th.ID)]
		if !ok {
			t.Errorf("dump thread %d was not written", th.ID)
			continue
		}
		ctx := unwind.Context{ContextFlags: unwind.CONTEXT_FULL | unwind.CONTEXT_SEGMENTS}
		if err := d.ThreadContext(th.ID, &ctx); err != nil {
			t.Fatal(err)
		}
		want.FsBase, want.GsBase = 0, 0
		if ctx != want {
			t.Errorf("thread %d: registers\n %+v\nwant\n %+v", th.ID, ctx, want)
		}
	}
	var mods []target.Module
	d.Modules(func(m target.Module) bool { mods = append(mods, m); return true })
	if len(mods) != len(lc.content.Modules) {
		t.Errorf("%d modules, want %d", len(mods), len(lc.content.Modules))
	}
	byBase := map[uint64]minidump.WriteModule{}
	for _, m := range lc.content.Modules {
		byBase[m.Base] = m
	}
	for _, m := range mods {
		w, ok := byBase[m.Base]
		path := w.Name
		if strings.HasPrefix(path, "[") {
			path = "" // [vdso] and the like name no file
		}
		if !ok || m.Size != w.Size || m.Path != path || target.BaseName(w.Name) != m.Name || !bytes.Equal(m.CodeView, w.CodeView) {
			t.Errorf("module %+v, want %+v", m, w)
		}
	}
	for addr, want := range lc.bytes {
		got := make([]byte, len(want))
		if n, err := d.ReadMemory(got, addr); n != len(got) || !bytes.Equal(got, want) {
			t.Errorf("memory at %#x: %d bytes, %v, or different bytes", addr, n, err)
		}
	}
}

// checkLLDB opens the dump with lldb: its threads, the first thread's rip
// and rsp, the modules and a read of the stack must be what was written.
func checkLLDB(t *testing.T, lc *liveCapture, name string) {
	lldb := testenv.Tool(t, "lldb")
	first := lc.ctx[lc.content.Threads[0].ID]
	rsp := first.Rsp
	cmd := exec.Command(lldb, "-b", "-c", name, "-o", "thread list", "-o", "register read rip rsp",
		"-o", "image list", "-o", fmt.Sprintf("memory read --size 8 --count 4 --format x %#x", rsp))
	cmd.Env = append(os.Environ(), "LLDB_NO_DEBUGINFOD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("lldb: %v\n%s", err, out)
	}
	text := string(out)
	for _, th := range lc.content.Threads {
		if !regexp.MustCompile(fmt.Sprintf(`tid = %d\b`, th.ID)).MatchString(text) {
			t.Errorf("lldb does not list thread %d:\n%s", th.ID, text)
		}
	}
	for reg, want := range map[string]uint64{"rip": first.Rip, "rsp": rsp} {
		m := regexp.MustCompile(`\b` + reg + ` = (0x[0-9a-f]+)`).FindStringSubmatch(text)
		if m == nil {
			t.Errorf("lldb shows no %s:\n%s", reg, text)
			continue
		}
		if v, _ := strconv.ParseUint(m[1], 0, 64); v != want {
			t.Errorf("lldb: %s = %#x, want %#x", reg, v, want)
		}
	}
	for _, m := range lc.content.Modules {
		if strings.HasPrefix(m.Name, "/") && !strings.Contains(text, m.Name) {
			t.Errorf("lldb does not list module %s:\n%s", m.Name, text)
		}
	}
	// lldb prints two words a line: "0x7ffd...: 0x... 0x...".
	stack := lc.bytes[lc.content.Threads[0].Stack.Addr]
	words := map[uint64]string{}
	for _, line := range strings.Split(text, "\n") {
		a, rest, ok := strings.Cut(strings.TrimSpace(line), ": ")
		addr, err := strconv.ParseUint(a, 0, 64)
		if !ok || err != nil {
			continue
		}
		for i, w := range strings.Fields(rest) {
			words[addr+uint64(8*i)] = w
		}
	}
	for i := range 4 {
		a := rsp + uint64(8*i)
		want := fmt.Sprintf("0x%016x", binary.LittleEndian.Uint64(stack[a-lc.content.Threads[0].Stack.Addr:]))
		if words[a] != want {
			t.Errorf("lldb memory read at %#x: %q, want %q in\n%s", a, words[a], want, text)
		}
	}
}

// checkObj2yaml reads the dump with obj2yaml: threads (id, stack start),
// module names and the memory list.
func checkObj2yaml(t *testing.T, lc *liveCapture, name string) {
	tool := testenv.Tool(t, "obj2yaml")
	out, err := exec.Command(tool, name).CombinedOutput()
	if err != nil {
		t.Fatalf("obj2yaml: %v\n%s", err, out)
	}
	var threads, stacks, mods, ranges []string
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		line := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "- "))
		k, v, _ := strings.Cut(line, ":")
		v = strings.Trim(strings.TrimSpace(v), "'")
		switch {
		case k == "Type":
			section = v
		case k == "Thread Id":
			threads = append(threads, v)
		case k == "Start of Memory Range" && section == "ThreadList":
			stacks = append(stacks, v)
		case k == "Start of Memory Range" && section == "MemoryList":
			ranges = append(ranges, v)
		case k == "Module Name":
			mods = append(mods, v)
		}
	}
	hex := func(v uint64) string { return fmt.Sprintf("0x%X", v) }
	var wantThreads, wantStacks, wantMods []string
	for _, th := range lc.content.Threads {
		wantThreads = append(wantThreads, hex(uint64(th.ID)))
		wantStacks = append(wantStacks, hex(th.Stack.Addr))
	}
	for _, m := range lc.content.Modules {
		wantMods = append(wantMods, m.Name)
	}
	f, err := minidump.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	list, err := f.MemoryList()
	if err != nil {
		t.Fatal(err)
	}
	var wantRanges []string
	for _, r := range list {
		wantRanges = append(wantRanges, hex(r.StartOfMemoryRange))
	}
	for _, c := range []struct {
		what      string
		got, want []string
	}{{"threads", threads, wantThreads}, {"stacks", stacks, wantStacks}, {"modules", mods, wantMods}, {"memory ranges", ranges, wantRanges}} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("obj2yaml %s: %q, want %q", c.what, c.got, c.want)
		}
	}
	if len(ranges) != len(lc.content.Threads)+1 {
		t.Errorf("obj2yaml: %d memory ranges, want a stack per thread and the code page", len(ranges))
	}
}
