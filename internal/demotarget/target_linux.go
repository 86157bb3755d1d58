//go:build linux && amd64

package demotarget

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"
	"golang.org/x/sys/unix"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/functable/remote"
	"github.com/fntable/fntable/internal/jitgen"
	"github.com/fntable/fntable/internal/procmem"
	"github.com/fntable/fntable/symfile"
	"github.com/fntable/fntable/symfile/perfmap"
	"github.com/fntable/fntable/unwindinfo"
)

// prctl(PR_SET_PTRACER) values (linux/prctl.h, Yama).
const (
	prSetPtracer    = 0x59616d61
	prSetPtracerAny = ^uintptr(0)
)

// blockTimeout bounds the wait for a thread to block in its system call.
const blockTimeout = 30 * time.Second

// gcInterval is the period of the goroutine that allocates and collects.
const gcInterval = 50 * time.Millisecond

// target is the state of the target process.
type target struct {
	seed     uint64
	provider string

	res    []byte // the reservation
	r      uint64 // its address
	thunk  uint64 // the entry thunk, also the static table's base
	b1, b2 uint64 // starts of the callback and growable parts
	next   int    // offset of the first free page of the growable part

	reg      *functable.Registry
	growable *functable.Table
	gsrc     []unwindinfo.RuntimeFunction // the growable table's entry array
	gcount   uint32                       // its valid entries

	perf     *os.File
	perfPath string

	pipe [2]int // the ordinary thread reads pipe[0]; pipe[1] stays open

	report Report

	churnCycles atomic.Uint64
	churnErr    atomic.Pointer[string]
}

// jitImage is a generated image placed in the reservation.
type jitImage struct {
	img  *jitgen.Image
	base uint64
	code []byte // the bytes placed: img.Bytes, possibly relinked
}

// fn returns the absolute range of function i.
func (im *jitImage) fn(i int) (begin, end uint64) {
	f := im.img.Functions[i]
	return im.base + uint64(f.Begin), im.base + uint64(f.End)
}

// size returns the page-rounded size of the image.
func (im *jitImage) size() int { return pages(len(im.img.Bytes)) }

// Main runs the target with its arguments (flags; see [Start]) and
// returns its exit status: 0 when it ended as asked, 1 on failure, 2 on
// a usage error. It returns only when the target ends; the caller then
// exits (os.Exit), which ends the parked threads.
func Main(args []string) int {
	fs := flag.NewFlagSet("demotarget", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	seed := fs.Uint64("seed", 1, "jitgen `seed` of every generated chain")
	provider := fs.String("provider", "", "`path` of the provider library of the callback table (none: no callback table)")
	churn := fs.Bool("churn", false, "keep adding and deleting other tables while running")
	lifetime := fs.Duration("lifetime", 10*time.Minute, "exit after this long (0: never)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "demotarget: unexpected arguments %q\n", fs.Args())
		return 2
	}
	t := &target{seed: *seed, provider: *provider}
	err := t.run(*churn, *lifetime)
	if t.perfPath != "" {
		os.Remove(t.perfPath)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "demotarget: %v\n", err)
		return 1
	}
	return 0
}

func (t *target) run(churn bool, lifetime time.Duration) error {
	// Let any process of this user trace us and read our memory (Yama's
	// ptrace_scope 1 allows only ancestors): the demo's walker and the
	// provider library run in processes that are not.
	unix.Prctl(prSetPtracer, prSetPtracerAny, 0, 0, 0)

	res, err := unix.Mmap(-1, 0, reserveSize, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return fmt.Errorf("reserve %d bytes of address space: %w", reserveSize, err)
	}
	t.res, t.r = res, uint64(uintptr(unsafe.Pointer(&res[0])))
	t.report = Report{Pid: os.Getpid(), Seed: t.seed, Provider: t.provider, Churn: churn,
		Reservation: Range{Addr(t.r), Addr(t.r + reserveSize)}, Metadata: Addr(t.r)}

	// The images, generated before anything is placed so that the same
	// seed gives the same code whatever happens later.
	var imgs [5]*jitgen.Image
	for i, n := range []int{staticFns, mixedAFns + 1, callbackFns, mixedBFns, grownFns} {
		if imgs[i], err = genChain(t.seed, uint64(i+1), n); err != nil {
			return err
		}
	}
	static := &jitImage{img: imgs[0]}
	mixedA := &jitImage{img: imgs[1]}
	callback := &jitImage{img: imgs[2]}
	mixedB := &jitImage{img: imgs[3]}
	grown := &jitImage{img: imgs[4]}

	// Addresses: the thunk's page, then the images, each on pages of its
	// own; the two mixed images straddle the parts' boundaries.
	thunkBytes, thunkRF := thunkImage()
	t.thunk = t.r + staticOff
	off := staticOff + pages(len(thunkBytes))
	for _, im := range []*jitImage{static, mixedA, callback, mixedB} {
		im.base = t.r + uint64(off)
		im.code = append([]byte(nil), im.img.Bytes...)
		off += im.size()
	}
	t.next = off
	splitA := mixedA.img.Functions[mixedAStat].Begin
	splitB := mixedB.img.Functions[mixedBCall].Begin
	t.b1, t.b2 = mixedA.base+uint64(splitA), mixedB.base+uint64(splitB)
	if off+grown.size() > growEnd {
		return fmt.Errorf("lay out the code: %d bytes do not fit below %#x", off+grown.size(), growEnd)
	}
	// The mixed chain goes on from mixed-a's last running function to
	// mixed-b's first.
	mb0, _ := mixedB.fn(0)
	if err := relink(mixedA.img, mixedA.code, mixedA.base, mixedAFns-1, mb0); err != nil {
		return err
	}

	// The tables' entries.
	staticEntries := []unwindinfo.RuntimeFunction{thunkRF}
	var cbEntries []unwindinfo.RuntimeFunction
	var gEntries []unwindinfo.RuntimeFunction
	for _, p := range []struct {
		im     *jitImage
		into   *[]unwindinfo.RuntimeFunction
		base   uint64
		lo, hi uint32
	}{
		{static, &staticEntries, t.thunk, 0, ^uint32(0)},
		{mixedA, &staticEntries, t.thunk, 0, splitA},
		{mixedA, &cbEntries, t.b1, splitA, ^uint32(0)},
		{callback, &cbEntries, t.b1, 0, ^uint32(0)},
		{mixedB, &cbEntries, t.b1, 0, splitB},
		{mixedB, &gEntries, t.b2, splitB, ^uint32(0)},
	} {
		es, err := rebase(p.im.img, p.im.base, p.base, p.lo, p.hi)
		if err != nil {
			return err
		}
		*p.into = append(*p.into, es...)
	}
	for _, es := range [][]unwindinfo.RuntimeFunction{staticEntries, cbEntries, gEntries} {
		if !sortedEntries(es) {
			return errors.New("lay out the code: a table's entries are not sorted")
		}
	}
	meta := metadataBlock(t.b1, cbEntries)
	if len(meta) > staticOff {
		return fmt.Errorf("lay out the code: metadata block of %d bytes exceeds its page", len(meta))
	}

	// Write everything, W^X.
	if err := t.place(0, meta, unix.PROT_READ); err != nil {
		return err
	}
	if err := t.place(staticOff, thunkBytes, unix.PROT_READ|unix.PROT_EXEC); err != nil {
		return err
	}
	for _, im := range []*jitImage{static, mixedA, callback, mixedB} {
		if err := t.place(int(im.base-t.r), im.code, unix.PROT_READ|unix.PROT_EXEC); err != nil {
			return err
		}
	}

	// Register.
	if t.reg, err = functable.New(functable.Options{Publish: true}); err != nil {
		return fmt.Errorf("create the registry: %w", err)
	}
	st, err := t.reg.AddFunctionTable(staticEntries, t.thunk)
	if err != nil {
		return err
	}
	smin, smax := st.Range()
	t.report.Tables = append(t.report.Tables, Table{Kind: TableStatic, Min: Addr(smin), Max: Addr(smax), Base: Addr(t.thunk),
		EntryCount: len(staticEntries), MaximumEntryCount: len(staticEntries), Entries: reportEntries(staticEntries)})
	if t.provider != "" {
		lookup := func(pc uint64, _ any) *unwindinfo.RuntimeFunction {
			rva := pc - t.b1
			i := sort.Search(len(cbEntries), func(i int) bool { return uint64(cbEntries[i].EndAddress) > rva })
			if i < len(cbEntries) && uint64(cbEntries[i].BeginAddress) <= rva {
				return &cbEntries[i]
			}
			return nil
		}
		ct, err := t.reg.InstallFunctionTableCallback(t.b1|3, t.b1, uint32(t.b2-t.b1), lookup, nil, t.provider)
		if err != nil {
			return err
		}
		if err := ct.PublishNativeCallback(0, t.r); err != nil {
			return fmt.Errorf("publish the callback table's context: %w", err)
		}
		t.report.Tables = append(t.report.Tables, Table{Kind: TableCallback, Min: Addr(t.b1), Max: Addr(t.b2), Base: Addr(t.b1),
			Identifier: Addr(t.b1 | 3), Context: Addr(t.r), EntryCount: len(cbEntries), MaximumEntryCount: len(cbEntries),
			Entries: reportEntries(cbEntries)})
	} else {
		t.report.Notes = append(t.report.Notes, fmt.Sprintf(
			"no provider library given: no callback table; the callback part [%#x, %#x) is not registered", t.b1, t.b2))
	}
	t.gsrc = make([]unwindinfo.RuntimeFunction, maxGrowable)
	t.gcount = uint32(copy(t.gsrc, gEntries))
	if t.growable, err = t.reg.AddGrowableFunctionTable(t.gsrc, t.gcount, maxGrowable, t.b2, t.r+growEnd); err != nil {
		return err
	}

	// Name the code.
	t.perfPath = fmt.Sprintf("/tmp/perf-%d.map", os.Getpid())
	if t.perf, err = os.OpenFile(t.perfPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		t.perfPath = ""
		return fmt.Errorf("create the perf map: %w", err)
	}
	t.report.PerfMap = t.perfPath
	syms := []symfile.Symbol{{Name: "jit_thunk", Addr: t.thunk, Size: uint64(len(thunkCode))}}
	syms = appendSyms(syms, static, "jit_static_f", 0, 0, staticFns)
	syms = appendSyms(syms, mixedA, "jit_mixed_f", 0, 0, mixedAFns)
	syms = appendSyms(syms, mixedA, "jit_mixed_spare", -1, mixedAFns, mixedAFns+1)
	syms = appendSyms(syms, callback, "jit_callback_f", 0, 0, callbackFns)
	syms = appendSyms(syms, mixedB, "jit_mixed_f", mixedAFns, 0, mixedBFns)
	if err := perfmap.Write(t.perf, syms); err != nil {
		return err
	}

	go collect()

	// The first threads.
	thunkFrame := Frame{Function: "jit_thunk", Begin: Addr(t.thunk), End: Addr(t.thunk + uint64(len(thunkCode))), Table: TableStatic}
	chains := []struct {
		name  string
		kind  ThreadKind
		entry uint64
		parts []framePart
	}{
		{"jit-static", ThreadStatic, 0, []framePart{{static, "jit_static_f", 0, staticFns}}},
		{"jit-mixed", ThreadMixed, 0, []framePart{{mixedA, "jit_mixed_f", 0, mixedAFns}, {mixedB, "jit_mixed_f", mixedAFns, mixedBFns}}},
		{"jit-callback", ThreadCallback, 0, []framePart{{callback, "jit_callback_f", 0, callbackFns}}},
	}
	for i, c := range chains {
		if err := t.startChain(c.name, c.kind, uintptr(i), c.parts, thunkFrame); err != nil {
			return err
		}
	}
	if err := t.startOrdinary(); err != nil {
		return err
	}

	// JIT more code into the growable part while the others run, grow
	// the table, and only then run it.
	grown.base = t.r + uint64(t.next)
	grown.code = grown.img.Bytes
	if err := t.place(t.next, grown.code, unix.PROT_READ|unix.PROT_EXEC); err != nil {
		return err
	}
	t.next += grown.size()
	ges, err := rebase(grown.img, grown.base, t.b2, 0, ^uint32(0))
	if err != nil {
		return err
	}
	if int(t.gcount)+len(ges) > maxGrowable {
		return errors.New("grow the growable table: too many entries")
	}
	copy(t.gsrc[t.gcount:], ges)
	if err := t.reg.GrowFunctionTable(t.growable, t.gcount+uint32(len(ges))); err != nil {
		return err
	}
	t.gcount += uint32(len(ges))
	if err := perfmap.Write(t.perf, appendSyms(nil, grown, "jit_grown_f", 0, 0, grownFns)); err != nil {
		return err
	}
	if err := t.startChain("jit-grown", ThreadGrown, uintptr(len(chains)), []framePart{{grown, "jit_grown_f", 0, grownFns}}, thunkFrame); err != nil {
		return err
	}
	gvalid := t.gsrc[:t.gcount]
	t.report.Tables = append(t.report.Tables, Table{Kind: TableGrowable, Min: Addr(t.b2), Max: Addr(t.r + growEnd), Base: Addr(t.b2),
		EntryCount: len(gvalid), MaximumEntryCount: maxGrowable, Entries: reportEntries(gvalid)})

	t.findRecords()
	if churn {
		if err := t.startChurn(); err != nil {
			return err
		}
	}

	t.report.NumGC = numGC()
	line, err := json.Marshal(&t.report)
	if err != nil {
		return err
	}
	if _, err := os.Stdout.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	return t.serve(lifetime)
}

// place writes data at offset off of the reservation: it makes the pages
// read-write, copies, and then gives them prot.
func (t *target) place(off int, data []byte, prot int) error {
	n := pages(len(data))
	if off < 0 || off+n > len(t.res) {
		return fmt.Errorf("place %d bytes at offset %#x: outside the reservation", len(data), off)
	}
	mem := t.res[off : off+n]
	if err := unix.Mprotect(mem, unix.PROT_READ|unix.PROT_WRITE); err != nil {
		return fmt.Errorf("make %#x read-write: %w", t.r+uint64(off), err)
	}
	copy(mem, data)
	if err := unix.Mprotect(mem, prot); err != nil {
		return fmt.Errorf("protect %#x: %w", t.r+uint64(off), err)
	}
	return nil
}

// appendSyms appends perf map symbols for functions [from, to) of im,
// named prefix followed by first+i for function from+i (prefix alone if
// first < 0).
func appendSyms(syms []symfile.Symbol, im *jitImage, prefix string, first, from, to int) []symfile.Symbol {
	for i := from; i < to; i++ {
		b, e := im.fn(i)
		name := prefix
		if first >= 0 {
			name += strconv.Itoa(first + i - from)
		}
		syms = append(syms, symfile.Symbol{Name: name, Addr: b, Size: e - b, Kind: symfile.KindFunction})
	}
	return syms
}

// framePart is a run of a chain's functions: functions [0, n) of im,
// named prefix followed by first+i.
type framePart struct {
	im     *jitImage
	prefix string
	first  int
	n      int
}

// kindOf returns the kind of the table that covers address a.
func (t *target) kindOf(a uint64) TableKind {
	switch {
	case a < t.b1:
		return TableStatic
	case a < t.b2:
		if t.provider == "" {
			return TableNone
		}
		return TableCallback
	default:
		return TableGrowable
	}
}

// startChain starts a JIT thread running the chain made of parts (whose
// first function is entered through the thunk) and waits until it is
// blocked in pause in the chain's last function.
func (t *target) startChain(name string, kind ThreadKind, arg uintptr, parts []framePart, thunkFrame Frame) error {
	var frames []Frame
	for _, p := range parts {
		for i := range p.n {
			b, e := p.im.fn(i)
			frames = append(frames, Frame{Function: p.prefix + strconv.Itoa(p.first+i), Begin: Addr(b), End: Addr(e), Table: t.kindOf(b)})
		}
	}
	entry := uint64(frames[0].Begin)
	last := frames[len(frames)-1]
	// Innermost first, then the thunk.
	for i, j := 0, len(frames)-1; i < j; i, j = i+1, j-1 {
		frames[i], frames[j] = frames[j], frames[i]
	}
	frames = append(frames, thunkFrame)

	tids := make(chan int)
	thunk := t.thunk
	go func() {
		runtime.LockOSThread()
		setThreadName(name)
		tids <- unix.Gettid()
		// Never returns: the chain's last function loops on pause.
		purego.SyscallN(uintptr(thunk), arg, uintptr(entry))
		fmt.Fprintf(os.Stderr, "demotarget: thread %s returned from JIT code\n", name)
		os.Exit(1)
	}()
	tid := <-tids
	if err := waitBlocked(tid, SysPause, uint64(last.Begin), uint64(last.End)); err != nil {
		return fmt.Errorf("thread %s: %w", name, err)
	}
	t.report.Threads = append(t.report.Threads, Thread{Tid: tid, Name: name, Kind: kind, Syscall: SysPause, Frames: frames})
	return nil
}

// startOrdinary starts the ordinary thread: Go code blocked in read(2)
// on a pipe nobody writes to.
func (t *target) startOrdinary() error {
	if err := unix.Pipe2(t.pipe[:], unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("create a pipe: %w", err)
	}
	const name = "ordinary"
	tids := make(chan int)
	fd := t.pipe[0]
	go func() {
		runtime.LockOSThread()
		setThreadName(name)
		tids <- unix.Gettid()
		var b [1]byte
		for {
			// A raw read, so the thread is in the system call, not parked
			// by the runtime's poller.
			syscall.Syscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), 1)
		}
	}()
	tid := <-tids
	if err := waitBlocked(tid, SysRead, 0, 0); err != nil {
		return fmt.Errorf("thread %s: %w", name, err)
	}
	t.report.Threads = append(t.report.Threads, Thread{Tid: tid, Name: name, Kind: ThreadOrdinary, Syscall: SysRead, Frames: []Frame{}})
	return nil
}

// setThreadName names the calling thread (prctl(PR_SET_NAME), at most 15
// bytes).
func setThreadName(name string) {
	var b [16]byte
	copy(b[:15], name)
	unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0, 0, 0)
}

// waitBlocked waits until thread tid of this process is blocked in system
// call nr with its PC in [lo, hi) (any PC if hi is 0), as
// /proc/self/task/TID/syscall shows it.
func waitBlocked(tid, nr int, lo, hi uint64) error {
	deadline := time.Now().Add(blockTimeout)
	for {
		data, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/syscall", tid))
		if err == nil {
			if n, pc, ok := ParseSyscall(string(data)); ok && n == nr && (hi == 0 || lo <= pc && pc < hi) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not blocked in system call %d in [%#x, %#x) after %v: %q %v", nr, lo, hi, blockTimeout, data, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// findRecords fills in the report's record addresses from the published
// list, read as another process would.
func (t *target) findRecords() {
	ms, err := remote.Find(os.Getpid())
	if err != nil {
		return
	}
	mem, err := procmem.Open(os.Getpid())
	if err != nil {
		return
	}
	defer mem.Close()
	for _, m := range ms {
		snap, err := remote.Read(mem, m)
		if err != nil {
			continue
		}
		for _, rt := range snap.Tables {
			for i := range t.report.Tables {
				tt := &t.report.Tables[i]
				if uint64(tt.Min) == rt.MinimumAddress && (rt.Type == functable.RF_CALLBACK) == (tt.Kind == TableCallback) {
					tt.Record = Addr(rt.Record)
				}
			}
		}
	}
}

// serve answers commands on standard input until it ends, a signal
// arrives or the lifetime ends.
func (t *target) serve(lifetime time.Duration) error {
	end := make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			switch strings.TrimSpace(sc.Text()) {
			case "status":
				st := Status{NumGC: numGC(), ChurnCycles: t.churnCycles.Load()}
				if p := t.churnErr.Load(); p != nil {
					st.ChurnErr = *p
				}
				line, _ := json.Marshal(st)
				os.Stdout.Write(append(line, '\n'))
			case "":
			default:
				fmt.Fprintf(os.Stderr, "demotarget: unknown command %q\n", sc.Text())
			}
		}
		end <- struct{}{}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	defer signal.Stop(sig)
	var expire <-chan time.Time
	if lifetime > 0 {
		expire = time.After(lifetime)
	}
	select {
	case <-end:
	case <-sig:
	case <-expire:
	}
	runtime.KeepAlive(t.reg)
	runtime.KeepAlive(t.res)
	return nil
}

// collect allocates and collects garbage for ever, so that the report
// can show the garbage collector running while the JIT threads block.
func collect() {
	var keep [][]byte
	for {
		for range 64 {
			keep = append(keep, make([]byte, 4096))
		}
		if len(keep) > 4096 {
			keep = nil
		}
		runtime.GC()
		time.Sleep(gcInterval)
	}
}

// numGC returns the number of completed garbage collections.
// (runtime.ReadMemStats rather than runtime/metrics: fntable links this
// package, and runtime/metrics's initialization would cost every command.)
func numGC() uint32 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.NumGC
}

// startChurn places the churn images and starts the goroutine that keeps
// registering and deleting tables over them: static tables, and a
// growable table grown one entry at a time. It never touches the parked
// threads' tables.
func (t *target) startChurn() error {
	const statics, fns = 3, 16
	off := churnOff
	type placed struct {
		img  *jitgen.Image
		base uint64
	}
	var ims []placed
	var syms []symfile.Symbol
	for k := range statics + 1 {
		base := t.r + uint64(off)
		img := jitgen.Build(jitgen.Config{Functions: fns, Base: base}, rand.New(rand.NewPCG(t.seed, uint64(100+k))))
		if err := t.place(off, img.Bytes, unix.PROT_READ|unix.PROT_EXEC); err != nil {
			return err
		}
		off += pages(len(img.Bytes))
		ims = append(ims, placed{img, base})
		for _, f := range img.Functions {
			syms = append(syms, symfile.Symbol{Name: fmt.Sprintf("jit_churn%d_f%d", k, f.ID), Addr: base + uint64(f.Begin), Size: uint64(f.End - f.Begin), Kind: symfile.KindFunction})
		}
	}
	if off > reserveSize {
		return errors.New("lay out the churn code: it does not fit the reservation")
	}
	if err := perfmap.Write(t.perf, syms); err != nil {
		return err
	}
	g := ims[statics]
	gsrc := append([]unwindinfo.RuntimeFunction(nil), g.img.Table...)
	gend := g.base + uint64(pages(len(g.img.Bytes)))
	fail := func(err error) {
		msg := err.Error()
		t.churnErr.Store(&msg)
		fmt.Fprintf(os.Stderr, "demotarget: churn: %v\n", err)
	}
	go func() {
		tables := make([]*functable.Table, statics)
		for {
			for k := range statics {
				var err error
				if tables[k], err = t.reg.AddFunctionTable(ims[k].img.Table, ims[k].base); err != nil {
					fail(err)
					return
				}
			}
			gt, err := t.reg.AddGrowableFunctionTable(gsrc, 0, uint32(len(gsrc)), g.base, gend)
			if err != nil {
				fail(err)
				return
			}
			for n := 1; n <= len(gsrc); n++ {
				if err := t.reg.GrowFunctionTable(gt, uint32(n)); err != nil {
					fail(err)
					return
				}
			}
			for _, st := range tables {
				if err := t.reg.DeleteFunctionTable(st); err != nil {
					fail(err)
					return
				}
			}
			if err := t.reg.DeleteGrowableFunctionTable(gt); err != nil {
				fail(err)
				return
			}
			t.churnCycles.Add(1)
		}
	}()
	return nil
}
