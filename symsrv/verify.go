package symsrv

import (
	"bytes"
	"debug/elf"
	"debug/pe"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/fntable/fntable/symfile"
	"github.com/fntable/fntable/symfile/debugfile"
)

// maxNameLen bounds a file name taken from a module or CodeView record.
const maxNameLen = 255

// verifyELF checks that the file at path is an ELF file with build ID want.
func verifyELF(path string, want []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	ef, err := elf.NewFile(f)
	if err != nil {
		return &MismatchError{Want: hex.EncodeToString(want), Err: fmt.Errorf("not an elf file: %w", err)}
	}
	got := debugfile.BuildID(ef)
	if got == nil {
		return &MismatchError{Want: hex.EncodeToString(want), Err: fmt.Errorf("elf file without a build id")}
	}
	if !bytes.Equal(got, want) {
		return &MismatchError{Want: hex.EncodeToString(want), Got: hex.EncodeToString(got)}
	}
	return nil
}

// imageID is a PE image's symbol store index: TimeDateStamp as 8
// upper-case hex digits, then SizeOfImage in lower-case hex without
// padding (symstore's and symsrv's convention).
func imageID(timeDateStamp, sizeOfImage uint32) string {
	return fmt.Sprintf("%08X%x", timeDateStamp, sizeOfImage)
}

// pdbID is a PDB's symbol store index: the GUID as 32 upper-case hex
// digits, Data1, Data2 and Data3 printed as numbers (they are stored
// little-endian) and Data4's 8 bytes in order, then the age in upper-case
// hex without padding.
func pdbID(guid [16]byte, age uint32) string {
	return fmt.Sprintf("%08X%04X%04X%X%X",
		binary.LittleEndian.Uint32(guid[0:]),
		binary.LittleEndian.Uint16(guid[4:]),
		binary.LittleEndian.Uint16(guid[6:]),
		guid[8:16], age)
}

// verifyPE checks that the file at path is a PE image with the given
// TimeDateStamp and SizeOfImage.
func verifyPE(path string, timeDateStamp, sizeOfImage uint32) error {
	want := imageID(timeDateStamp, sizeOfImage)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	pf, err := pe.NewFile(f)
	if err != nil {
		return &MismatchError{Want: want, Err: fmt.Errorf("not a pe image: %w", err)}
	}
	var size uint32
	switch oh := pf.OptionalHeader.(type) {
	case *pe.OptionalHeader64:
		size = oh.SizeOfImage
	case *pe.OptionalHeader32:
		size = oh.SizeOfImage
	default:
		return &MismatchError{Want: want, Err: fmt.Errorf("pe file without an optional header")}
	}
	if got := imageID(pf.FileHeader.TimeDateStamp, size); got != want {
		return &MismatchError{Want: want, Got: got}
	}
	return nil
}

// verifyPDB checks that the file at path is a PDB 7.0 with cv's GUID and
// age (see [PDBInfo.MatchAge]).
func verifyPDB(path string, cv *symfile.CodeView) error {
	want := pdbID(cv.GUID, cv.Age)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	info, err := ReadPDBInfo(f, fi.Size())
	if err != nil {
		return &MismatchError{Want: want, Err: err}
	}
	if got := pdbID(info.GUID, info.MatchAge()); got != want {
		return &MismatchError{Want: want, Got: got}
	}
	return nil
}

// baseName returns the last element of a Windows or POSIX path, checked
// to be usable as a single file name in a URL and a cache directory: not
// empty, not "." or "..", without NUL, control characters or ':', and at
// most maxNameLen bytes. Module names and CodeView paths come from the
// files being debugged, so they are not trusted to stay inside the cache.
func baseName(p string) (string, error) {
	name := p
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	switch {
	case name == "" || name == "." || name == "..":
		return "", fmt.Errorf("invalid file name %q", p)
	case len(name) > maxNameLen:
		return "", fmt.Errorf("file name of %d bytes is too long", len(name))
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f || c == ':' {
			return "", fmt.Errorf("invalid character %q in file name %q", c, name)
		}
	}
	return name, nil
}
