package target

import (
	"strings"
	"testing"
)

// TestModulesFromMapsGrouping checks how mappings are grouped into
// modules: a module is a run of consecutive mappings of one file.
func TestModulesFromMapsGrouping(t *testing.T) {
	const (
		exe  = "/usr/bin/prog"
		libc = "/usr/lib/x86_64-linux-gnu/libc.so.6"
		ld   = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
	)
	type mod struct {
		name       string
		base, size uint64
	}
	for _, c := range []struct {
		name string
		maps string
		want []mod
	}{
		{
			// A program that maps its own file again (its first page,
			// then a page from offset 0x1000) near libc: libc is
			// its own module, the first page a small module of the
			// file, the other page a data mapping.
			name: "self-mapping",
			maps: `562f9a72e000-562f9a72f000 r--p 00000000 fe:00 10 ` + exe + `
562f9a72f000-562f9a730000 r-xp 00001000 fe:00 10 ` + exe + `
562f9a730000-562f9a731000 r--p 00002000 fe:00 10 ` + exe + `
562f9a731000-562f9a732000 r--p 00002000 fe:00 10 ` + exe + `
562f9a732000-562f9a733000 rw-p 00003000 fe:00 10 ` + exe + `
562fcf8c1000-562fcf8e2000 rw-p 00000000 00:00 0                          [heap]
7fea0efc9000-7fea0efcc000 rw-p 00000000 00:00 0
7fea0efcc000-7fea0eff2000 r--p 00000000 fe:00 20 ` + libc + `
7fea0eff2000-7fea0f148000 r-xp 00026000 fe:00 20 ` + libc + `
7fea0f148000-7fea0f19b000 r--p 0017c000 fe:00 20 ` + libc + `
7fea0f19b000-7fea0f19f000 r--p 001cf000 fe:00 20 ` + libc + `
7fea0f19f000-7fea0f1a1000 rw-p 001d3000 fe:00 20 ` + libc + `
7fea0f1a1000-7fea0f1ae000 rw-p 00000000 00:00 0
7fea0f1b5000-7fea0f1b6000 r--p 00001000 fe:00 10 ` + exe + `
7fea0f1b6000-7fea0f1b7000 r--p 00000000 fe:00 10 ` + exe + `
7fea0f1b7000-7fea0f1b9000 rw-p 00000000 00:00 0
7fea0f1b9000-7fea0f1bd000 r--p 00000000 00:00 0                          [vvar]
7fea0f1bf000-7fea0f1c1000 r-xp 00000000 00:00 0                          [vdso]
7fea0f1c1000-7fea0f1c2000 r--p 00000000 fe:00 30 ` + ld + `
7fea0f1c2000-7fea0f1e8000 r-xp 00001000 fe:00 30 ` + ld + `
7fea0f1f4000-7fea0f1f6000 rw-p 00033000 fe:00 30 ` + ld + `
7fffd3fd0000-7fffd3ff1000 rw-p 00000000 00:00 0                          [stack]
`,
			want: []mod{
				{"prog", 0x562f9a72e000, 0x5000},
				{"libc.so.6", 0x7fea0efcc000, 0x1d5000},
				{"prog", 0x7fea0f1b6000, 0x1000},
				{"[vdso]", 0x7fea0f1bf000, 0x2000},
				{"ld-linux-x86-64.so.2", 0x7fea0f1c1000, 0x35000},
			},
		},
		{
			// A program that maps its own file's start right after
			// its last segment (with only anonymous memory
			// between): the mapping at offset 0 starts a new image.
			name: "self-mapping adjacent",
			maps: `400000-401000 r--p 00000000 fe:00 10 ` + exe + `
401000-402000 r-xp 00001000 fe:00 10 ` + exe + `
402000-403000 rw-p 00002000 fe:00 10 ` + exe + `
403000-404000 rw-p 00000000 00:00 0
404000-405000 r--p 00000000 fe:00 10 ` + exe + `
`,
			want: []mod{{"prog", 0x400000, 0x3000}, {"prog", 0x404000, 0x1000}},
		},
		{
			// node (non-PIE) with its embedded builtins mapped again
			// from the file, far away, by V8: a data mapping.
			name: "part of the executable mapped again",
			maps: `00400000-00b6f000 r--p 00000000 fe:00 40 /usr/bin/node
00b6f000-00b71000 r-xp 0076f000 fe:00 40 /usr/bin/node
00b72000-025fe000 r-xp 00772000 fe:00 40 /usr/bin/node
02600000-02601000 r-xp 02200000 fe:00 40 /usr/bin/node
02601000-0563a000 r--p 02201000 fe:00 40 /usr/bin/node
0563a000-0563e000 r--p 05239000 fe:00 40 /usr/bin/node
0563e000-0565d000 rw-p 0523d000 fe:00 40 /usr/bin/node
0565d000-05680000 rw-p 00000000 00:00 0
3e8a00000000-3e8a00040000 rw-p 00000000 00:00 0
7fa77a600000-7fa77a792000 r-xp 014c4000 fe:00 40 /usr/bin/node
7fa781000000-7fa781001000 r--p 00000000 fe:00 20 ` + libc + `
`,
			want: []mod{{"node", 0x400000, 0x525d000}, {"libc.so.6", 0x7fa781000000, 0x1000}},
		},
		{
			// The same library loaded twice (dlmopen), the second copy
			// right below the first.
			name: "same library twice",
			maps: `7f0000000000-7f0000001000 r--p 00000000 fe:00 50 /lib/libz.so.1
7f0000001000-7f0000003000 r-xp 00001000 fe:00 50 /lib/libz.so.1
7f0000003000-7f0000004000 rw-p 00003000 fe:00 50 /lib/libz.so.1
7f0000004000-7f0000005000 r--p 00000000 fe:00 50 /lib/libz.so.1
7f0000005000-7f0000007000 r-xp 00001000 fe:00 50 /lib/libz.so.1
7f0000007000-7f0000008000 rw-p 00003000 fe:00 50 /lib/libz.so.1
`,
			want: []mod{{"libz.so.1", 0x7f0000000000, 0x4000}, {"libz.so.1", 0x7f0000004000, 0x4000}},
		},
		{
			// Deleted files: the suffix is not part of the name; a
			// new file at the same path is another file.
			name: "deleted",
			maps: `7f0000000000-7f0000001000 r--p 00000000 fe:00 60 /opt/app/libplug.so (deleted)
7f0000001000-7f0000002000 r-xp 00001000 fe:00 60 /opt/app/libplug.so (deleted)
7f0000002000-7f0000003000 r--p 00000000 fe:00 61 /opt/app/libplug.so
7f0000003000-7f0000004000 r-xp 00001000 fe:00 61 /opt/app/libplug.so
7f0000004000-7f0000005000 rw-p 00002000 fe:00 60 /opt/app/libplug.so (deleted)
`,
			want: []mod{{"libplug.so", 0x7f0000000000, 0x2000}, {"libplug.so", 0x7f0000002000, 0x2000}},
		},
		{
			// An image aligned to 2 MiB: the gap between its text and
			// its data is the first mapping's PROT_NONE remainder,
			// whose offsets run past those of the data segment.
			name: "hugepage-aligned gap",
			maps: `7f1000000000-7f1000002000 r-xp 00000000 fe:00 70 /lib/libbig.so
7f1000002000-7f1000201000 ---p 00002000 fe:00 70 /lib/libbig.so
7f1000201000-7f1000202000 r--p 00001000 fe:00 70 /lib/libbig.so
7f1000202000-7f1000203000 rw-p 00002000 fe:00 70 /lib/libbig.so
7f1000203000-7f1000204000 rw-p 00000000 00:00 0
`,
			want: []mod{{"libbig.so", 0x7f1000000000, 0x203000}},
		},
		{
			// Segments with a hole between them, and a text segment
			// replaced by anonymous (huge page) memory.
			name: "gaps between segments",
			maps: `00400000-00401000 r--p 00000000 fe:00 80 /usr/bin/holes
00600000-00800000 r-xp 00000000 00:00 0
00800000-00801000 r--p 00400000 fe:00 80 /usr/bin/holes
00a00000-00a01000 rw-p 00401000 fe:00 80 /usr/bin/holes
`,
			want: []mod{{"holes", 0x400000, 0x601000}},
		},
		{
			// Another file's mapping between two mappings of a file
			// ends its run.
			name: "another file between",
			maps: `7f0000000000-7f0000001000 r--p 00000000 fe:00 90 /lib/liba.so
7f0000001000-7f0000002000 r--p 00000000 fe:00 91 /usr/share/data.bin
7f0000002000-7f0000003000 r-xp 00002000 fe:00 90 /lib/liba.so
7f0000003000-7f0000004000 rw-s 00000000 00:01 92 /memfd:jit (deleted)
7f0000004000-7f0000005000 r-xp 00004000 fe:00 91 /usr/share/data.bin
`,
			want: []mod{{"liba.so", 0x7f0000000000, 0x1000}, {"data.bin", 0x7f0000001000, 0x1000}},
		},
		{
			// A file mapped only from an offset is a module from
			// where its start would be. A line whose offset is
			// beyond its address is left out.
			name: "no mapping at offset 0",
			maps: `1000-2000 r--p 00003000 fe:00 93 /data/big.db
7f0000010000-7f0000011000 r--p 00004000 fe:00 94 /data/file
7f0000011000-7f0000012000 r--p 00005000 fe:00 94 /data/file
7f0000012000-7f0000013000 r--p 00000000 fe:00 20 ` + libc + `
7f0000020000-7f0000021000 r--p 00008000 fe:00 94 /data/file
`,
			want: []mod{
				{"file", 0x7f000000c000, 0x6000},
				{"libc.so.6", 0x7f0000012000, 0x1000},
				{"file", 0x7f0000018000, 0x9000},
			},
		},
		{
			// A program reading its own debug sections through
			// views of its file (libbacktrace does): only anonymous
			// memory lies between the executable and the views, but
			// they lie far above where its layout would put them.
			name: "views of the executable",
			maps: `55d0c0a00000-55d0c0a01000 r--p 00000000 fe:00 10 ` + exe + `
55d0c0a01000-55d0c0a02000 r-xp 00001000 fe:00 10 ` + exe + `
55d0c0a02000-55d0c0a03000 rw-p 00002000 fe:00 10 ` + exe + `
55d0c1000000-55d0c1021000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000010000 rw-p 00000000 00:00 0
7f0000010000-7f0000014000 r--p 00003000 fe:00 10 ` + exe + `
7f0000020000-7f0000021000 r--p 00000000 fe:00 20 ` + libc + `
`,
			want: []mod{{"prog", 0x55d0c0a00000, 0x3000}, {"libc.so.6", 0x7f0000020000, 0x1000}},
		},
		{
			// An image linked for 2 MiB pages without separate code:
			// the data segment shares a file page with the text and
			// lies 2 MiB further up in memory than in the file.
			name: "segments sharing a file page",
			maps: `7f2000000000-7f200001e000 r-xp 00000000 fe:00 95 /lib/libold.so
7f200001e000-7f200021d000 ---p 0001e000 fe:00 95 /lib/libold.so
7f200021d000-7f200021e000 r--p 0001d000 fe:00 95 /lib/libold.so
7f200021e000-7f200021f000 rw-p 0001e000 fe:00 95 /lib/libold.so
7f200021f000-7f2000221000 rw-p 00000000 00:00 0
`,
			want: []mod{{"libold.so", 0x7f2000000000, 0x21f000}},
		},
		{
			name: "vdso only",
			maps: `7ffd5c3f0000-7ffd5c3f2000 r--p 00000000 00:00 0 [vvar]
7ffd5c3f2000-7ffd5c3f4000 r-xp 00000000 00:00 0 [vdso]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]
`,
			want: []mod{{"[vdso]", 0x7ffd5c3f2000, 0x2000}},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			mods, err := ModulesFromMaps(strings.NewReader(c.maps))
			if err != nil {
				t.Fatal(err)
			}
			var got []mod
			for _, m := range mods {
				got = append(got, mod{m.Name, m.Base, m.Size})
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %d modules %#x, want %#x", len(got), got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("module %d = %s [%#x, +%#x), want %s [%#x, +%#x)", i,
						got[i].name, got[i].base, got[i].size, c.want[i].name, c.want[i].base, c.want[i].size)
				}
			}
		})
	}
}
