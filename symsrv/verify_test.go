package symsrv

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"github.com/fntable/fntable/symfile/debugfile"
	"os"
	"path/filepath"
	"testing"
)

// TestVerifyELF checks the identity check on the fixture's files against
// readelf, and on files that are not what was asked for.
func TestVerifyELF(t *testing.T) {
	fx := debuginfodFixture(t)
	for _, f := range []elfFile{fx.small, fx.splitExe, fx.splitDebug, fx.big} {
		ef, err := elf.Open(f.path)
		if err != nil {
			t.Fatal(err)
		}
		got := hex.EncodeToString(debugfile.BuildID(ef))
		ef.Close()
		if got != f.id {
			t.Errorf("%s: build id %s, readelf says %s", filepath.Base(f.path), got, f.id)
		}
		if err := verifyELF(f.path, f.buildID(t)); err != nil {
			t.Errorf("%s: %v", filepath.Base(f.path), err)
		}
	}
	var me *MismatchError
	if err := verifyELF(fx.small.path, fx.big.buildID(t)); !errors.As(err, &me) || me.Got != fx.small.id {
		t.Errorf("wrong file: %v", err)
	}
	dir := t.TempDir()
	for name, b := range map[string][]byte{
		"empty":     nil,
		"truncated": fx.small.raw[:len(fx.small.raw)/2],
		"pdb":       msfSynth{512, pdbStreams(PDBVersionVC70, 1, 1, testGUID, 1)}.bytes(),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := verifyELF(p, fx.small.buildID(t)); !errors.As(err, &me) || me.Got != "" || me.Err == nil {
			t.Errorf("%s: %v, want an unidentified *MismatchError", name, err)
		}
	}
}

// TestBuildIDNoteBudget builds an ELF file whose 2000 note sections all
// point at the same megabyte without a build ID: the scan must stop after
// debugfile.MaxNoteTotal bytes instead of reading 2000 MiB.
func TestBuildIDNoteBudget(t *testing.T) {
	const nsec = 2000
	const dataOff, dataSize = 64, 1 << 20
	shoff := dataOff + dataSize
	le := binary.LittleEndian
	b := make([]byte, shoff+nsec*64)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	le.PutUint16(b[16:], uint16(elf.ET_EXEC))
	le.PutUint16(b[18:], uint16(elf.EM_X86_64))
	le.PutUint32(b[20:], uint32(elf.EV_CURRENT))
	le.PutUint64(b[40:], uint64(shoff)) // e_shoff
	le.PutUint16(b[52:], 64)            // e_ehsize
	le.PutUint16(b[58:], 64)            // e_shentsize
	le.PutUint16(b[60:], nsec)          // e_shnum
	// Garbage notes: each header claims a 4-byte name and a descriptor
	// that fills the rest of the megabyte, with type 1 (not a build ID).
	le.PutUint32(b[dataOff:], 4)
	le.PutUint32(b[dataOff+4:], dataSize-16)
	le.PutUint32(b[dataOff+8:], 1)
	copy(b[dataOff+12:], "GNU\x00")
	for i := 1; i < nsec; i++ {
		sh := b[shoff+i*64:]
		le.PutUint32(sh[4:], uint32(elf.SHT_NOTE))
		le.PutUint64(sh[24:], dataOff)  // sh_offset
		le.PutUint64(sh[32:], dataSize) // sh_size
		le.PutUint64(sh[48:], 4)        // sh_addralign
	}
	reads := &countingReaderAt{r: bytes.NewReader(b)}
	f, err := elf.NewFile(reads)
	if err != nil {
		t.Fatal(err)
	}
	before := reads.n
	if id := debugfile.BuildID(f); id != nil {
		t.Fatalf("build id %x in garbage", id)
	}
	if n := reads.n - before; n > debugfile.MaxNoteTotal+1<<20 {
		t.Errorf("read %d bytes of notes, want at most about %d", n, debugfile.MaxNoteTotal)
	}
}

type countingReaderAt struct {
	r interface {
		ReadAt([]byte, int64) (int, error)
	}
	n int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n += int64(n)
	return n, err
}
