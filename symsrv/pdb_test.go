package symsrv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// msfSynth writes MSF 7.00 files for the reader's table tests: block 0
// is the superblock, blocks 1 and 2 the free block maps, then the
// streams, the directory and the block map.
type msfSynth struct {
	blockSize uint32
	streams   [][]byte // nil: a nil stream (size 0xffffffff)
}

// pdbStreams returns streams 0 to 3 of a PDB with the given identity:
// an empty old directory, the info stream, an empty TPI, and a DBI
// stream header (VersionSignature -1, V70, age) padded to 64 bytes.
func pdbStreams(version, sig, age uint32, guid [16]byte, dbiAge uint32) [][]byte {
	info := binary.LittleEndian.AppendUint32(nil, version)
	info = binary.LittleEndian.AppendUint32(info, sig)
	info = binary.LittleEndian.AppendUint32(info, age)
	info = append(info, guid[:]...)
	info = append(info, 0, 0, 0, 0) // named stream map: none
	dbi := binary.LittleEndian.AppendUint32(nil, 0xffffffff)
	dbi = binary.LittleEndian.AppendUint32(dbi, 19990903)
	dbi = binary.LittleEndian.AppendUint32(dbi, dbiAge)
	dbi = append(dbi, make([]byte, 52)...)
	return [][]byte{{}, info, {}, dbi}
}

var testGUID = [16]byte{0xfb, 0xc5, 0x35, 0xf5, 0xe8, 0x2a, 0xb8, 0x4b, 0xaa, 0x20, 0x6c, 0x30, 0xbe, 0x56, 0x6c, 0x5a}

func (s msfSynth) bytes() []byte {
	bs := int(s.blockSize)
	blocks := [][]byte{nil, make([]byte, bs), make([]byte, bs)}
	add := func(data []byte) []uint32 {
		var idx []uint32
		for off := 0; off < len(data); off += bs {
			b := make([]byte, bs)
			copy(b, data[off:])
			idx = append(idx, uint32(len(blocks)))
			blocks = append(blocks, b)
		}
		return idx
	}
	dir := binary.LittleEndian.AppendUint32(nil, uint32(len(s.streams)))
	var lists [][]uint32
	for _, st := range s.streams {
		size := uint32(len(st))
		if st == nil {
			size = nilStreamSize
		}
		dir = binary.LittleEndian.AppendUint32(dir, size)
		lists = append(lists, add(st))
	}
	for _, l := range lists {
		for _, b := range l {
			dir = binary.LittleEndian.AppendUint32(dir, b)
		}
	}
	dirBlocks := add(dir)
	var blockMap []byte
	for _, b := range dirBlocks {
		blockMap = binary.LittleEndian.AppendUint32(blockMap, b)
	}
	mapBlock := add(blockMap)[0]
	sb := []byte(msfMagic)
	for _, v := range []uint32{s.blockSize, 1, uint32(len(blocks)), uint32(len(dir)), 0, mapBlock} {
		sb = binary.LittleEndian.AppendUint32(sb, v)
	}
	blocks[0] = make([]byte, bs)
	copy(blocks[0], sb)
	return bytes.Join(blocks, nil)
}

// patch returns a copy of b with a little-endian uint32 at off.
func patch(b []byte, off int, v uint32) []byte {
	b = bytes.Clone(b)
	binary.LittleEndian.PutUint32(b[off:], v)
	return b
}

func TestReadPDBInfo(t *testing.T) {
	std := pdbStreams(PDBVersionVC70, 0x5c9e0959, 3, testGUID, 2)
	good := msfSynth{512, std}.bytes()
	want := PDBInfo{Version: PDBVersionVC70, Signature: 0x5c9e0959, Age: 3, GUID: testGUID, HasDBI: true, DBIAge: 2}

	// 200 streams: the directory spans two 512-byte blocks, and stream
	// 0's 3 blocks push the later block lists further in.
	many := append([][]byte{make([]byte, 1300)}, std[1:]...)
	for len(many) < 200 {
		many = append(many, []byte{1, 2, 3})
	}
	noDBI := msfSynth{512, std[:3]}.bytes()
	nilDBI := msfSynth{512, append(append([][]byte{}, std[:3]...), nil)}.bytes()
	oldDBI := msfSynth{512, append(append([][]byte{}, std[:3]...), make([]byte, 64))}.bytes()
	infoOnly := want
	infoOnly.HasDBI, infoOnly.DBIAge = false, 0

	ok := []struct {
		name string
		b    []byte
		want PDBInfo
	}{
		{"512-byte blocks", good, want},
		{"4096-byte blocks", msfSynth{4096, std}.bytes(), want},
		{"32 KiB blocks", msfSynth{32 << 10, std}.bytes(), want},
		{"directory over two blocks", msfSynth{512, many}.bytes(), want},
		{"no dbi stream", noDBI, infoOnly},
		{"nil dbi stream", nilDBI, infoOnly},
		{"dbi without the current signature", oldDBI, infoOnly},
		{"vc140 version", msfSynth{512, pdbStreams(20140508, 1, 1, testGUID, 1)}.bytes(),
			PDBInfo{Version: 20140508, Signature: 1, Age: 1, GUID: testGUID, HasDBI: true, DBIAge: 1}},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadPDBInfo(bytes.NewReader(tc.b), int64(len(tc.b)))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if a := want.MatchAge(); a != 2 {
		t.Errorf("MatchAge with a DBI stream: %d, want the DBI age 2", a)
	}
	if a := infoOnly.MatchAge(); a != 3 {
		t.Errorf("MatchAge without a DBI stream: %d, want the info age 3", a)
	}

	// The superblock: magic 0..31, BlockSize 32, FreeBlockMapBlock 36,
	// NumBlocks 40, NumDirectoryBytes 44, Unknown 48, BlockMapAddr 52.
	numBlocks := binary.LittleEndian.Uint32(good[40:])
	mapAddr := binary.LittleEndian.Uint32(good[52:])
	dirBlock := binary.LittleEndian.Uint32(good[mapAddr*512:])
	dirOff := int(dirBlock) * 512
	bad := []struct {
		name     string
		b        []byte
		notPDB   bool
		contains string
	}{
		{"empty", nil, true, ""},
		{"magic only", []byte(msfMagic), true, ""},
		{"pdb 2.00", append([]byte("Microsoft C/C++ program database 2.00\r\n\x1aJG\x00\x00"), make([]byte, 64)...), true, ""},
		{"elf", append([]byte("\x7fELF"), make([]byte, 100)...), true, ""},
		{"block size 0", patch(good, 32, 0), false, "block size"},
		{"block size 256", patch(good, 32, 256), false, "block size"},
		{"block size 3000", patch(good, 32, 3000), false, "block size"},
		{"block size 64 KiB", patch(good, 32, 64<<10), false, "block size"},
		{"more blocks than the file", patch(good, 40, numBlocks+1), false, "block count"},
		{"truncated file", good[:len(good)-1], false, "block count"},
		{"huge block count", patch(good, 40, 0xffffffff), false, "block count"},
		{"no directory", patch(good, 44, 0), false, "directory size"},
		{"directory too big for one block map", patch(good, 44, 512/4*512+1), false, "directory size"},
		{"block map at block 0", patch(good, 52, 0), false, "block index"},
		{"block map past the end", patch(good, 52, numBlocks), false, "block index"},
		{"directory block out of range", patch(good, int(mapAddr)*512, 0xffff), false, "block index"},
		{"stream count past the directory", patch(good, dirOff, 1000), false, "stream count"},
		{"one stream", patch(good, dirOff, 1), false, "no pdb info stream"},
		{"short info stream", patch(good, dirOff+8, 27), false, "too short"},
		{"nil info stream", patch(good, dirOff+8, nilStreamSize), false, "too short"},
		{"info stream size past the directory", patch(good, dirOff+8, 0x7fffffff), false, "block list"},
		{"info block out of range", patch(good, dirOff+4+4*4+0, numBlocks), false, "block index"},
		{"old version", msfSynth{512, pdbStreams(19990604, 1, 1, testGUID, 1)}.bytes(), false, "version"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadPDBInfo(bytes.NewReader(tc.b), int64(len(tc.b)))
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.notPDB {
				if !errors.Is(err, ErrNotPDB) || errors.Is(err, ErrMalformed) {
					t.Fatalf("error %v, want ErrNotPDB only", err)
				}
				return
			}
			var fe *FormatError
			if !errors.Is(err, ErrMalformed) || !errors.As(err, &fe) || errors.Is(err, ErrNotPDB) {
				t.Fatalf("error %v, want a *FormatError", err)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q does not mention %q", err, tc.contains)
			}
		})
	}
}

// TestReadPDBInfoLLVM checks the reader against LLVM's: PDBs written by
// llvm-pdbutil yaml2pdb, with the identity that llvm-pdbutil dump prints.
func TestReadPDBInfoLLVM(t *testing.T) {
	pdbutil := needCmd(t, "llvm-pdbutil", "llvm")
	dir := t.TempDir()
	cases := []struct {
		blockSize, age, dbiAge, sig int
		guid                        string
	}{
		{4096, 1, 1, 0x5c9e0959, "{F535C5FB-2AE8-4BB8-AA20-6C30BE566C5A}"},
		{512, 3, 2, 1234567, "{01234567-89AB-CDEF-0123-456789ABCDEF}"},
		{1024, 0x1a, 0x1a, 0, "{FFFFFFFF-0000-0001-8000-00000000007F}"},
	}
	for i, tc := range cases {
		t.Run(tc.guid, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("t%d.pdb", i))
			writeYAMLPDB(t, pdbutil, path, tc.blockSize, tc.age, tc.dbiAge, tc.sig, tc.guid)
			llvm := llvmPDBSummary(t, pdbutil, path)

			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ReadPDBInfo(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			if got.Signature != llvm.sig || got.Age != llvm.age || !got.HasDBI || got.DBIAge != llvm.dbiAge {
				t.Errorf("got %+v, llvm-pdbutil says signature %d, age %d, dbi age %d", got, llvm.sig, llvm.age, llvm.dbiAge)
			}
			// The store index: LLVM's printed GUID without braces and
			// dashes, then the DBI age in hex.
			wantID := strings.NewReplacer("{", "", "}", "", "-", "").Replace(llvm.guid) + strconv.FormatUint(uint64(llvm.dbiAge), 16)
			if id := pdbID(got.GUID, got.MatchAge()); id != strings.ToUpper(wantID) {
				t.Errorf("index %s, want %s", id, strings.ToUpper(wantID))
			}
		})
	}
}

// writeYAMLPDB writes a PDB with llvm-pdbutil yaml2pdb.
func writeYAMLPDB(t testing.TB, pdbutil, path string, blockSize, age, dbiAge, sig int, guid string) {
	t.Helper()
	yaml := fmt.Sprintf(`---
MSF:
  SuperBlock:
    BlockSize: %d
    FreeBlockMap: 1
    NumBlocks: 0
    NumDirectoryBytes: 0
    Unknown1: 0
    BlockMapAddr: 0
  NumDirectoryBlocks: 0
  DirectoryBlocks: []
  NumStreams: 0
  FileSize: 0
PdbStream:
  Age: %d
  Guid: '%s'
  Signature: %d
  Features: [ VC140 ]
  Version: VC70
DbiStream:
  VerHeader: V70
  Age: %d
  BuildNumber: 0
  PdbDllVersion: 0
  PdbDllRbld: 0
  Flags: 0
  MachineType: Amd64
...
`, blockSize, age, guid, sig, dbiAge)
	yamlPath := path + ".yaml"
	if err := os.WriteFile(yamlPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, pdbutil, "yaml2pdb", "-pdb="+path, yamlPath)
}

type llvmPDB struct {
	sig, age, dbiAge uint32
	guid             string
}

var (
	summarySig  = regexp.MustCompile(`(?m)^\s*Signature: (\d+)`)
	summaryAge  = regexp.MustCompile(`(?m)^\s*Age: (\d+)`)
	summaryGUID = regexp.MustCompile(`(?m)^\s*GUID: (\{[0-9A-F-]+\})`)
	yamlDBIAge  = regexp.MustCompile(`(?s)DbiStream:.*?Age:\s+(\d+)`)
)

// llvmPDBSummary reads a PDB's identity with llvm-pdbutil: the info
// stream from "dump -summary", the DBI age from "pdb2yaml -dbi-stream".
func llvmPDBSummary(t testing.TB, pdbutil, path string) llvmPDB {
	t.Helper()
	sum := run(t, pdbutil, "dump", "-summary", path)
	yaml := run(t, pdbutil, "pdb2yaml", "-dbi-stream", path)
	num := func(re *regexp.Regexp, s string) uint32 {
		m := re.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("llvm-pdbutil output without %v:\n%s", re, s)
		}
		n, err := strconv.ParseUint(m[1], 10, 32)
		if err != nil {
			t.Fatal(err)
		}
		return uint32(n)
	}
	m := summaryGUID.FindStringSubmatch(sum)
	if m == nil {
		t.Fatalf("llvm-pdbutil dump -summary without a GUID:\n%s", sum)
	}
	return llvmPDB{sig: num(summarySig, sum), age: num(summaryAge, sum), dbiAge: num(yamlDBIAge, yaml), guid: m[1]}
}

// FuzzPDBInfo reads arbitrary bytes as a PDB: no input may panic, errors
// must be typed, and a PDB that reads must read the same when the
// superblock's unused field changes.
func FuzzPDBInfo(f *testing.F) {
	std := pdbStreams(PDBVersionVC70, 7, 3, testGUID, 2)
	f.Add(msfSynth{512, std}.bytes())
	f.Add(msfSynth{512, std[:3]}.bytes())
	f.Add(msfSynth{1024, append(append([][]byte{}, std...), []byte{9}, nil)}.bytes())
	f.Add([]byte(msfMagic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := ReadPDBInfo(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if errors.Is(err, ErrNotPDB) == errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v: not exactly one of not-pdb or malformed", err)
			}
			_ = err.Error()
			return
		}
		if info.Version < PDBVersionVC70 {
			t.Fatalf("accepted version %d", info.Version)
		}
		_ = info.MatchAge()
		_ = pdbID(info.GUID, info.MatchAge())
		// Bytes 48..51 (the superblock's unknown field) play no part.
		if len(b) >= superBlockSize {
			again, err := ReadPDBInfo(bytes.NewReader(patch(b, 48, 0x12345678)), int64(len(b)))
			if err != nil || again != info {
				t.Fatalf("changing an unused field: %+v, %v; was %+v", again, err, info)
			}
		}
	})
}

func BenchmarkReadPDBInfo(b *testing.B) {
	data := msfSynth{4096, pdbStreams(PDBVersionVC70, 7, 3, testGUID, 2)}.bytes()
	r := bytes.NewReader(data)
	for b.Loop() {
		if _, err := ReadPDBInfo(r, int64(len(data))); err != nil {
			b.Fatal(err)
		}
	}
}
