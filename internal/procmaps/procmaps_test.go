package procmaps

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		name string
		in   string
		want Line
	}{
		{"file", "55d0c0a02000-55d0c0a06000 r-xp 00002000 fd:01 1234                       /usr/bin/prog",
			Line{0x55d0c0a02000, 0x55d0c0a06000, "r-xp", 0x2000, "fd:01", 1234, "/usr/bin/prog"}},
		{"spaces in path", "10-20 r--p 00000000 fd:01 7 /usr/bin/my  prog ",
			Line{0x10, 0x20, "r--p", 0, "fd:01", 7, "/usr/bin/my  prog "}},
		{"deleted", "7f0000100000-7f0000200000 rw-s 00010000 00:01 77 /memfd:fntable-function-tables (deleted)",
			Line{0x7f0000100000, 0x7f0000200000, "rw-s", 0x10000, "00:01", 77, "/memfd:fntable-function-tables (deleted)"}},
		{"anonymous", "7f00001ff000-7f0000200000 rw-p 00000000 00:00 0",
			Line{0x7f00001ff000, 0x7f0000200000, "rw-p", 0, "00:00", 0, ""}},
		{"anonymous padded", "7f00001ff000-7f0000200000 rw-p 00000000 00:00 0      ",
			Line{0x7f00001ff000, 0x7f0000200000, "rw-p", 0, "00:00", 0, ""}},
		{"pseudo", "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]",
			Line{0xffffffffff600000, 0xffffffffff601000, "--xp", 0, "00:00", 0, "[vsyscall]"}},
	} {
		got, err := Parse(c.in)
		if err != nil || got != c.want {
			t.Errorf("%s: Parse(%q) = %+v, %v; want %+v", c.name, c.in, got, err, c.want)
		}
	}
	l, _ := Parse("1-2 r-xp 0 0:0 1 /lib/a b.so (deleted)")
	if !l.Deleted() || l.File() != "/lib/a b.so" || !l.Executable() {
		t.Errorf("deleted line: %+v deleted=%v file=%q", l, l.Deleted(), l.File())
	}
}

func TestParseMalformed(t *testing.T) {
	for _, in := range []string{
		"",
		"zz-10 r-xp 0 0:0 0 /x",
		"10-5 r-xp 0 0:0 0 /x",
		"10-10 r-xp 0 0:0 0 /x",
		"10 r-xp 0 0:0 0 /x",
		"10-20 r-xp",
		"10-20 r-xp qq 0:0 0 /x",
		"10-20 r-xp 0 0:0 -1 /x",
		"10-20 r-xp 0 0:0 ab /x",
		"10-1ffffffffffffffff r-xp 0 0:0 0 /x",
	} {
		if l, err := Parse(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) = %+v, %v; want ErrMalformed", in, l, err)
		}
	}
}

func TestScan(t *testing.T) {
	in := "10-20 r-xp 0 0:0 1 /a\n\n  \nbad\n30-40 r--p 0 0:0 0\n"
	var lines []int
	var bad int
	err := Scan(strings.NewReader(in), func(n int, l Line, err error) error {
		if err != nil {
			bad = n
			return nil
		}
		lines = append(lines, n)
		return nil
	})
	if err != nil || len(lines) != 2 || lines[0] != 1 || lines[1] != 5 || bad != 4 {
		t.Errorf("Scan: lines %v, bad %d, err %v", lines, bad, err)
	}
	stop := errors.New("stop")
	if err := Scan(strings.NewReader(in), func(int, Line, error) error { return stop }); err != stop {
		t.Errorf("Scan does not return fn's error: %v", err)
	}
	long := strings.Repeat("x", MaxLine+1)
	if err := Scan(strings.NewReader(long), func(int, Line, error) error { return nil }); err == nil {
		t.Error("Scan accepts a line longer than MaxLine")
	}
}

func FuzzParse(f *testing.F) {
	f.Add("55d0c0a02000-55d0c0a06000 r-xp 00002000 fd:01 1234 /usr/bin/prog (deleted)")
	f.Add("10-20 r-xp 0 0:0 0")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err == nil && (l.End <= l.Start || l.Perms == "" || l.Dev == "") {
			t.Fatalf("Parse(%q) = %+v", s, l)
		}
		l.Deleted()
		l.File()
		l.Executable()
	})
}

func TestSyntaxError(t *testing.T) {
	err := Scan(strings.NewReader("10-20 r-xp 0 0:0 0\nbad line\n"), func(n int, l Line, err error) error { return err })
	var se *SyntaxError
	if !errors.As(err, &se) || se.Line != 2 || se.Text != "bad line" || !errors.Is(err, ErrMalformed) {
		t.Fatalf("Scan = %v", err)
	}
	if !strings.Contains(err.Error(), "line 2") {
		t.Errorf("error %q does not name the line", err)
	}
}

func TestExecutableRanges(t *testing.T) {
	maps := []byte("00400000-00401000 r--p 00000000 08:01 1 /bin/x\n" +
		"00401000-00405000 r-xp 00001000 08:01 1 /bin/x\n" +
		"garbage\n" +
		"7f0000000000-7f0000002000 r-xp 00000000 00:00 0 [vdso]\n")
	r := ExecutableRanges(maps)
	if len(r) != 2 {
		t.Fatalf("ranges %#x", r)
	}
	for addr, want := range map[uint64]bool{0x400fff: false, 0x401000: true, 0x404fff: true, 0x405000: false, 0x7f0000001fff: true, 0x7f0000002000: false} {
		if r.Contains(addr) != want {
			t.Errorf("Contains(%#x) = %v", addr, !want)
		}
	}
	if r := ExecutableRanges(nil); r == nil || r.Contains(0) {
		t.Errorf("no maps: %#v", r)
	}
}
