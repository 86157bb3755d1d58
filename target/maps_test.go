package target

import (
	"strings"
	"testing"
)

func TestModulesFromMaps(t *testing.T) {
	const maps = `55d0c0a00000-55d0c0a02000 r--p 00000000 fd:01 1234 /usr/bin/my prog
55d0c0a02000-55d0c0a06000 r-xp 00002000 fd:01 1234 /usr/bin/my prog
55d0c0a06000-55d0c0a07000 rw-p 00006000 fd:01 1234 /usr/bin/my prog
55d0c1000000-55d0c1021000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000001000 r-xp 00001000 fd:01 99 /lib/libgone.so (deleted)
7f0000100000-7f0000200000 rw-s 00000000 00:01 77 /memfd:fntable-function-tables (deleted)
7f00001ff000-7f0000200000 rw-p 00000000 00:00 0
7ffd5c3f0000-7ffd5c3f2000 r--p 00000000 00:00 0 [vvar]
7ffd5c3f2000-7ffd5c3f4000 r-xp 00000000 00:00 0 [vdso]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]

`
	mods, err := ModulesFromMaps(strings.NewReader(maps))
	if err != nil {
		t.Fatal(err)
	}
	want := []Module{
		{Name: "my prog", Path: "/usr/bin/my prog", Base: 0x55d0c0a00000, Size: 0x7000},
		{Name: "libgone.so", Path: "/lib/libgone.so", Base: 0x7f0000000000 - 0x1000, Size: 0x2000},
		{Name: "[vdso]", Base: 0x7ffd5c3f2000, Size: 0x2000, InMemory: true},
	}
	if len(mods) != len(want) {
		t.Fatalf("got %d modules %+v, want %d", len(mods), mods, len(want))
	}
	for i := range want {
		g, w := mods[i], want[i]
		if g.Name != w.Name || g.Path != w.Path || g.Base != w.Base || g.Size != w.Size || g.InMemory != w.InMemory {
			t.Errorf("module %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestModulesFromMapsMalformed(t *testing.T) {
	for _, in := range []string{
		"zz-10 r-xp 0 0:0 0 /x",
		"10-5 r-xp 0 0:0 0 /x",
		"10-20 r-xp",
		"10-20 r-xp qq 0:0 0 /x",
	} {
		if _, err := ModulesFromMaps(strings.NewReader(in)); err == nil {
			t.Errorf("ModulesFromMaps(%q) succeeded", in)
		}
	}
}

func TestBaseName(t *testing.T) {
	for in, want := range map[string]string{
		`C:\Windows\System32\ntdll.dll`:   "ntdll.dll",
		"/lib/x86_64-linux-gnu/libc.so.6": "libc.so.6",
		"plain":                           "plain",
		`mixed/dir\file.exe`:              "file.exe",
		"":                                "",
	} {
		if got := BaseName(in); got != want {
			t.Errorf("BaseName(%q) = %q, want %q", in, got, want)
		}
	}
}
