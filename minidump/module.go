package minidump

import (
	"fmt"
	"strings"

	"github.com/fntable/fntable/internal/binread"
)

// VS_FFI_SIGNATURE is the Signature of a valid VS_FIXEDFILEINFO.
const VS_FFI_SIGNATURE = 0xfeef04bd

// FixedFileInfo is VS_FIXEDFILEINFO, the version resource of a module
// (verrsrc.h). All fields are zero when the module has none.
type FixedFileInfo struct {
	Signature        uint32 // VS_FFI_SIGNATURE when present
	StrucVersion     uint32
	FileVersionMS    uint32 // major<<16 | minor
	FileVersionLS    uint32 // build<<16 | revision
	ProductVersionMS uint32
	ProductVersionLS uint32
	FileFlagsMask    uint32
	FileFlags        uint32 // VS_FF_* bits
	FileOS           uint32 // VOS_* value
	FileType         uint32 // VFT_* value: 1 application, 2 DLL, ...
	FileSubtype      uint32
	FileDateMS       uint32
	FileDateLS       uint32
}

// FileVersion returns the file version as "major.minor.build.revision",
// or "" when the module has no version resource.
func (v FixedFileInfo) FileVersion() string {
	if v.Signature != VS_FFI_SIGNATURE {
		return ""
	}
	return fmt.Sprintf("%d.%d.%d.%d", v.FileVersionMS>>16, v.FileVersionMS&0xffff, v.FileVersionLS>>16, v.FileVersionLS&0xffff)
}

// GUID is a Windows GUID in its in-memory layout.
type GUID struct {
	Data1 uint32
	Data2 uint16
	Data3 uint16
	Data4 [8]byte
}

// String formats g as "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" in lower case.
func (g GUID) String() string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", g.Data1, g.Data2, g.Data3, g.Data4[:2], g.Data4[2:])
}

// CodeView signatures: the first four bytes of a CodeView record.
const (
	CV_SIGNATURE_RSDS = 0x53445352 // "RSDS": PDB 7.0, identified by GUID and age
	CV_SIGNATURE_NB10 = 0x3031424e // "NB10": PDB 2.0, identified by time stamp and age
)

// CodeView is a module's decoded CodeView record: CV_INFO_PDB70 (RSDS) or
// CV_INFO_PDB20 (NB10), which name the PDB that holds the module's
// symbols.
type CodeView struct {
	Signature   uint32 // CV_SIGNATURE_RSDS or CV_SIGNATURE_NB10
	GUID        GUID   // RSDS: the PDB's GUID
	Offset      uint32 // NB10: offset of the debug information, usually 0
	Timestamp   uint32 // NB10: the PDB's signature (a time stamp)
	Age         uint32 // the PDB's age
	PDBFileName string // as recorded by the linker (bytes up to the NUL; RSDS names are UTF-8)
}

// DebugIdentifier returns the identifier that symbol servers index the PDB
// by: the GUID (or NB10 time stamp) as upper-case hex without dashes,
// followed by the age in hex, as Breakpad and dbghelp's symbol server
// paths write it.
func (c *CodeView) DebugIdentifier() string {
	if c.Signature == CV_SIGNATURE_NB10 {
		return fmt.Sprintf("%08X%x", c.Timestamp, c.Age)
	}
	g := c.GUID
	return fmt.Sprintf("%08X%04X%04X%X%x", g.Data1, g.Data2, g.Data3, g.Data4[:], c.Age)
}

// DecodeCodeView decodes a CodeView record. Records with another signature
// (such as the old "NB09" embedded debug information) are not decoded: it
// returns nil and no error for them.
func DecodeCodeView(b []byte) (*CodeView, error) {
	r := binread.New("codeview record", b, 0)
	c := &CodeView{Signature: r.U32()}
	switch c.Signature {
	case CV_SIGNATURE_RSDS:
		c.GUID = GUID{Data1: r.U32(), Data2: r.U16(), Data3: r.U16()}
		copy(c.GUID.Data4[:], r.Bytes(8))
		c.Age = r.U32()
	case CV_SIGNATURE_NB10:
		c.Offset = r.U32()
		c.Timestamp = r.U32()
		c.Age = r.U32()
	default:
		if r.Err() != nil {
			return nil, formatErr(r.Err(), "read codeview record")
		}
		return nil, nil
	}
	if r.Err() != nil {
		return nil, formatErr(r.Err(), "read codeview record")
	}
	name := r.Bytes(r.Len())
	if i := strings.IndexByte(string(name), 0); i >= 0 {
		name = name[:i]
	}
	c.PDBFileName = string(name)
	return c, nil
}

// Module is MINIDUMP_MODULE (108 bytes), one entry of the
// ModuleListStream, with its name and records read from the file.
type Module struct {
	BaseOfImage   uint64
	SizeOfImage   uint32
	CheckSum      uint32 // the image's PE checksum
	TimeDateStamp uint32 // the image's PE time stamp
	ModuleNameRva uint32 // file offset of the MINIDUMP_STRING with the path
	VersionInfo   FixedFileInfo
	CvRecord      Location // CodeView record
	MiscRecord    Location // IMAGE_DEBUG_MISC record
	Reserved0     uint64
	Reserved1     uint64

	Name     string    // the module's path, e.g. `C:\Windows\System32\ntdll.dll`
	CvData   []byte    // the CodeView record's bytes, nil if none
	CodeView *CodeView // CvData decoded, nil if none or not RSDS/NB10
	MiscData []byte    // the misc record's bytes (IMAGE_DEBUG_MISC), nil if none
}

// CodeIdentifier returns the identifier that symbol servers index the
// image by: its time stamp in upper-case hex followed by its size in hex.
func (m *Module) CodeIdentifier() string {
	return fmt.Sprintf("%08X%x", m.TimeDateStamp, m.SizeOfImage)
}

const moduleSize = 108

// Modules decodes the ModuleListStream and reads each module's name,
// CodeView record and misc record. It returns nil and no error if the dump
// has no module list. A name or record that cannot be read is left empty;
// the modules are returned with the first such error. Of a list cut short,
// the modules before the cut are returned, with the error.
func (f *File) Modules() ([]Module, error) {
	r, n, ok, lerr := f.listEntries(ModuleListStream, "module list", moduleSize)
	if !ok || n == 0 && lerr != nil {
		return nil, lerr
	}
	mods := make([]Module, n)
	for i := range mods {
		m := &mods[i]
		m.BaseOfImage = r.U64()
		m.SizeOfImage = r.U32()
		m.CheckSum = r.U32()
		m.TimeDateStamp = r.U32()
		m.ModuleNameRva = r.U32()
		v := &m.VersionInfo
		for _, p := range []*uint32{&v.Signature, &v.StrucVersion, &v.FileVersionMS, &v.FileVersionLS,
			&v.ProductVersionMS, &v.ProductVersionLS, &v.FileFlagsMask, &v.FileFlags, &v.FileOS,
			&v.FileType, &v.FileSubtype, &v.FileDateMS, &v.FileDateLS} {
			*p = r.U32()
		}
		m.CvRecord = readLocation(&r)
		m.MiscRecord = readLocation(&r)
		m.Reserved0 = r.U64()
		m.Reserved1 = r.U64()
	}
	if err := r.Err(); err != nil {
		return nil, formatErr(err, "read module list")
	}
	var errs errList
	if lerr != nil {
		errs.add(lerr)
	}
	b := f.newBudget()
	for i := range mods {
		if err := b.spent("module list", i, len(mods)); err != nil {
			errs.add(err)
			break
		}
		var err error
		m := &mods[i]
		if m.Name, err = f.readString(uint64(m.ModuleNameRva), b); err != nil {
			errs.add(fmt.Errorf("read name of module %d: %w", i, err))
		}
		if m.CvData, err = f.readRecord(m.CvRecord, b); err != nil {
			errs.add(fmt.Errorf("read codeview record of module %d (%s): %w", i, m.Name, err))
		} else if m.CvData != nil {
			if m.CodeView, err = DecodeCodeView(m.CvData); err != nil {
				errs.add(fmt.Errorf("read codeview record of module %d (%s): %w", i, m.Name, err))
			}
		}
		if m.MiscData, err = f.readRecord(m.MiscRecord, b); err != nil {
			errs.add(fmt.Errorf("read misc record of module %d (%s): %w", i, m.Name, err))
		}
	}
	return mods, errs.err()
}

// readRecord reads a record of at most MaxRecordSize bytes, charging it
// to b if not nil; an empty location gives nil.
func (f *File) readRecord(l Location, b *budget) ([]byte, error) {
	if l.DataSize == 0 {
		return nil, nil
	}
	if l.DataSize > MaxRecordSize {
		return nil, &FormatError{Off: int64(l.Rva), Msg: "read record: too large", Val: l.DataSize}
	}
	if err := b.take(uint64(l.Rva), uint64(l.DataSize)); err != nil {
		return nil, err
	}
	return f.readAt(uint64(l.Rva), uint64(l.DataSize))
}
