package cfi

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/testenv"
)

// readelfFDE is an FDE as readelf --debug-dump=frames-interp prints it.
type readelfFDE struct {
	section    string
	off        int64
	begin, end uint64
	cols       []string   // "CFA", then register names ("ra" for the return address column)
	rows       [][]string // LOC, then one cell per column
}

var (
	reSection = regexp.MustCompile(`^Contents of the (\S+) section`)
	reFDE     = regexp.MustCompile(`^([0-9a-f]+) [0-9a-f]+ [0-9a-f]+ FDE cie=[0-9a-f]+ pc=([0-9a-f]+)\.\.([0-9a-f]+)`)
	reRow     = regexp.MustCompile(`^[0-9a-f]{8,16} `)
)

// readelfFrames runs readelf on path and parses the FDEs it prints.
func readelfFrames(t *testing.T, path string) []*readelfFDE {
	t.Helper()
	readelf := testenv.Tool(t, "readelf")
	// readelf exits with status 1 on some files (libc) after printing
	// everything: judge by its output.
	cmd := exec.Command(readelf, "-W", "--debug-dump=frames-interp", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && len(out) == 0 {
		t.Fatalf("readelf %s: %v\n%s", path, err, stderr.Bytes())
	}
	var fdes []*readelfFDE
	var cur *readelfFDE
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := reSection.FindStringSubmatch(line); m != nil {
			section, cur = m[1], nil
			continue
		}
		if m := reFDE.FindStringSubmatch(line); m != nil {
			off, _ := strconv.ParseInt(m[1], 16, 64)
			b, _ := strconv.ParseUint(m[2], 16, 64)
			e, _ := strconv.ParseUint(m[3], 16, 64)
			cur = &readelfFDE{section: section, off: off, begin: b, end: e}
			fdes = append(fdes, cur)
			continue
		}
		if strings.Contains(line, " CIE") || strings.Contains(line, "ZERO terminator") {
			cur = nil
			continue
		}
		if cur == nil {
			continue
		}
		// A register rule prints as "rN (name)": one cell.
		var f []string
		for _, w := range strings.Fields(line) {
			if strings.HasPrefix(w, "(") && len(f) > 0 {
				f[len(f)-1] += " " + w
				continue
			}
			f = append(f, w)
		}
		switch {
		case len(f) >= 2 && f[0] == "LOC" && f[1] == "CFA":
			cur.cols = f[1:]
		case reRow.MatchString(line):
			cur.rows = append(cur.rows, f)
		}
	}
	return fdes
}

// readelfReg maps readelf's register column names to DWARF numbers.
func readelfReg(name string, ra int) (int, bool) {
	if name == "ra" {
		return ra, true
	}
	for i, n := range regNames {
		if n == name {
			return i, true
		}
	}
	return 0, false
}

// cellMatches compares one of our rules with readelf's cell.
func cellMatches(r Rule, cell string) bool {
	if n, _, ok := strings.Cut(cell, " ("); ok && strings.HasPrefix(n, "r") {
		reg, err := strconv.Atoi(n[1:])
		return err == nil && r.Kind == RuleRegister && r.Reg == reg
	}
	switch cell {
	case "u":
		// readelf shows a register referenced anywhere in the FDE as
		// "u" until a rule is given: unspecified or undefined.
		return r.Kind == RuleUnspecified || r.Kind == RuleUndefined
	}
	return r.String() == cell
}

type diffStats struct {
	fdes, rows, cells, noRows, otherCols int
}

// TestReadelfDifferential compares the rows of every FDE of system
// libraries and of a Go binary with readelf --debug-dump=frames-interp.
//
// Exclusions, each counted and logged:
//   - readelf prints expressions as "exp" (DW_CFA_expression,
//     DW_CFA_def_cfa_expression) and "vexp" (DW_CFA_val_expression)
//     without their bytes: those cells are compared by kind only.
//   - readelf prints no rows for an FDE whose instructions are all
//     DW_CFA_nop (or empty); such FDEs are counted as noRows and only
//     their address range is compared.
//   - Columns of registers outside 0–16 (XMM) are not kept by Row and are
//     skipped (otherCols).
func TestReadelfDifferential(t *testing.T) {
	fixed := func(p string) func(*testing.T) string { return func(*testing.T) string { return p } }
	for _, tc := range []struct {
		name string
		path func(*testing.T) string
	}{
		{"libc", fixed(libcPath)},
		{"ld.so", fixed(ldsoPath)},
		{"libstdc++", fixed("/usr/lib/x86_64-linux-gnu/libstdc++.so.6")},
		{"go", goBinary}, // .debug_frame, SHF_COMPRESSED
		{"c-debug", func(t *testing.T) string { _, _, d := splitDebug(t); return d }}, // GCC's .debug_frame in a separate debug file
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path(t)
			if _, err := os.Stat(path); err != nil {
				testenv.Unavailable(t, "needs %s: %v", path, err)
			}
			st := diffFile(t, path)
			t.Logf("%s: %d FDEs, %d rows, %d cells compared; %d FDEs without rows in readelf; %d XMM cells skipped",
				filepath.Base(path), st.fdes, st.rows, st.cells, st.noRows, st.otherCols)
		})
	}
}

func diffFile(t *testing.T, path string) diffStats {
	want := readelfFrames(t, path)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type key struct {
		sec string
		off int64
	}
	got := map[key]FDE{}
	if err := f.FDEs(func(fd FDE) bool {
		got[key{fd.Section, fd.Off}] = fd
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("%d FDEs, readelf %d", len(got), len(want))
	}
	var st diffStats
	fails := 0
	for _, w := range want {
		fd, ok := got[key{w.section, w.off}]
		if !ok {
			t.Errorf("%s+%#x: FDE missing", w.section, w.off)
			continue
		}
		st.fdes++
		if fd.Begin != w.begin || fd.End != w.end {
			t.Errorf("%s+%#x: range %#x..%#x, readelf %#x..%#x", w.section, w.off, fd.Begin, fd.End, w.begin, w.end)
		}
		rows, err := f.RowsOf(fd)
		if err != nil {
			t.Errorf("%s+%#x: %v", w.section, w.off, err)
			continue
		}
		if len(w.rows) == 0 {
			// Only the CIE's rules at Begin.
			st.noRows++
			if len(rows) != 1 || rows[0].Loc != fd.Begin {
				t.Errorf("%s+%#x: %d rows for an FDE readelf prints none of", w.section, w.off, len(rows))
			}
			continue
		}
		bad := func(format string, args ...any) {
			fails++
			if fails < 20 {
				t.Errorf("%s+%#x (pc %#x): "+format, append([]any{w.section, w.off, fd.Begin}, args...)...)
			}
		}
		if len(rows) != len(w.rows) {
			bad("%d rows, readelf %d", len(rows), len(w.rows))
			continue
		}
		cols := map[int]bool{}
		for i, wr := range w.rows {
			r := rows[i]
			st.rows++
			if len(wr) != len(w.cols)+1 {
				bad("readelf row %q has %d cells for %d columns", wr, len(wr), len(w.cols))
				break
			}
			if loc, _ := strconv.ParseUint(wr[0], 16, 64); loc != r.Loc {
				bad("row %d at %#x, readelf %s", i, r.Loc, wr[0])
			}
			if r.CFA.String() != wr[1] {
				bad("row %d CFA %s, readelf %s", i, r.CFA, wr[1])
			}
			st.cells++
			for j, name := range w.cols[1:] {
				reg, ok := readelfReg(name, fd.RAReg)
				if !ok {
					st.otherCols++
					continue
				}
				cols[reg] = true
				st.cells++
				if !cellMatches(r.Regs[reg], wr[j+2]) {
					bad("row %d at %#x: %s rule %s, readelf %s", i, r.Loc, name, r.Regs[reg], wr[j+2])
				}
			}
			for reg := range NumRegs {
				if !cols[reg] && r.Regs[reg].Kind != RuleUnspecified {
					bad("row %d at %#x: %s rule %s, readelf prints no column", i, r.Loc, RegName(reg), r.Regs[reg])
				}
			}
		}
	}
	if fails > 0 {
		t.Errorf("%d mismatches", fails)
	}
	return st
}

// goBinary builds a small Go program: gc-built binaries have only a
// .debug_frame, compressed (SHF_COMPRESSED). (The test binary itself has
// no DWARF: go test links it with -w.)
func goBinary(t *testing.T) string {
	t.Helper()
	goTool := testenv.Tool(t, "go")
	dir := t.TempDir()
	src := "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "hello")
	cmd := exec.Command(goTool, "build", "-o", exe, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}
