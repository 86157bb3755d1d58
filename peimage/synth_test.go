package peimage

import (
	"encoding/binary"

	"github.com/fntable/fntable/unwindinfo"
)

// synth describes a small PE32+ image built by the tests. The headers take
// the first 0x200 bytes of the file; each section's raw data follows at a
// 0x200-aligned file offset; sections are mapped at 0x1000-aligned RVAs.
type synth struct {
	machine  uint16 // 0 means IMAGE_FILE_MACHINE_AMD64
	magic    uint16 // 0 means IMAGE_NT_OPTIONAL_HDR64_MAGIC
	base     uint64
	sections []synthSection
	excRVA   uint32
	excSize  uint32
	// sizeOfImage overrides the computed SizeOfImage when nonzero.
	sizeOfImage uint32
}

type synthSection struct {
	name  string
	va    uint32
	vsize uint32 // 0 means len(data)
	data  []byte // raw data
}

const (
	synthFileAlign = 0x200
	synthSectAlign = 0x1000
)

func alignUp(v, a uint32) uint32 { return (v + a - 1) &^ (a - 1) }

func (s *synth) imageSize() uint32 {
	if s.sizeOfImage != 0 {
		return s.sizeOfImage
	}
	end := uint32(synthSectAlign)
	for _, sec := range s.sections {
		end = max(end, alignUp(sec.va+max(sec.vsize, uint32(len(sec.data))), synthSectAlign))
	}
	return end
}

// file returns the image file.
func (s *synth) file() []byte {
	machine, magic := s.machine, s.magic
	if machine == 0 {
		machine = IMAGE_FILE_MACHINE_AMD64
	}
	if magic == 0 {
		magic = IMAGE_NT_OPTIONAL_HDR64_MAGIC
	}
	b := make([]byte, synthFileAlign)
	le := binary.LittleEndian
	b[0], b[1] = 'M', 'Z'
	le.PutUint32(b[0x3c:], 0x40)
	copy(b[0x40:], "PE\x00\x00")
	coff := b[0x44:]
	le.PutUint16(coff[0:], machine)
	le.PutUint16(coff[2:], uint16(len(s.sections)))
	le.PutUint16(coff[16:], 0xf0) // SizeOfOptionalHeader
	le.PutUint16(coff[18:], 0x22) // EXECUTABLE_IMAGE | LARGE_ADDRESS_AWARE
	opt := b[0x58:]
	le.PutUint16(opt[0:], magic)
	le.PutUint64(opt[24:], s.base)
	le.PutUint32(opt[32:], synthSectAlign)
	le.PutUint32(opt[36:], synthFileAlign)
	le.PutUint32(opt[56:], s.imageSize())
	le.PutUint32(opt[60:], synthFileAlign) // SizeOfHeaders
	le.PutUint16(opt[68:], 3)              // console subsystem
	le.PutUint32(opt[108:], 16)
	le.PutUint32(opt[112+8*IMAGE_DIRECTORY_ENTRY_EXCEPTION:], s.excRVA)
	le.PutUint32(opt[116+8*IMAGE_DIRECTORY_ENTRY_EXCEPTION:], s.excSize)
	off := uint32(synthFileAlign)
	for i, sec := range s.sections {
		h := b[0x148+40*i:]
		copy(h, sec.name)
		vsize := sec.vsize
		if vsize == 0 {
			vsize = uint32(len(sec.data))
		}
		raw := alignUp(uint32(len(sec.data)), synthFileAlign)
		le.PutUint32(h[8:], vsize)
		le.PutUint32(h[12:], sec.va)
		le.PutUint32(h[16:], raw)
		if raw != 0 {
			le.PutUint32(h[20:], off)
		}
		le.PutUint32(h[36:], 0x40000040) // initialized data, readable
		data := make([]byte, raw)
		copy(data, sec.data)
		b = append(b, data...)
		off += raw
	}
	return b
}

// mapped returns the image as the loader maps it: headers at 0, each
// section at its RVA, zeros elsewhere.
func (s *synth) mapped() []byte {
	m := make([]byte, s.imageSize())
	copy(m, s.file()[:synthFileAlign])
	for _, sec := range s.sections {
		if int(sec.va) < len(m) {
			n := len(sec.data)
			if sec.vsize != 0 {
				n = min(n, int(sec.vsize))
			}
			copy(m[sec.va:], sec.data[:n])
		}
	}
	return m
}

// flatMemory is a Memory holding bytes at an address.
type flatMemory struct {
	addr uint64
	data []byte
}

func (m flatMemory) ReadMemory(p []byte, addr uint64) (int, error) {
	if addr < m.addr || addr-m.addr >= uint64(len(m.data)) {
		return 0, &UnmappedError{Addr: addr}
	}
	n := copy(p, m.data[addr-m.addr:])
	if n < len(p) {
		return n, &UnmappedError{Addr: addr + uint64(n)}
	}
	return n, nil
}

func rfBytes(fns ...unwindinfo.RuntimeFunction) []byte {
	var b []byte
	for _, f := range fns {
		b = f.Append(b)
	}
	return b
}

// basicSynth returns an image with three functions in .text, their unwind
// information in .xdata, a chained fragment, an indirect entry and the
// table in .pdata.
func basicSynth() *synth {
	xdata := []byte{
		// 0x3000: v1, prolog 4, 1 code: ALLOC_SMALL 0x28
		0x01, 0x04, 0x01, 0x00, 0x04, 0x42, 0x00, 0x00,
		// 0x3008: v1 EHANDLER, prolog 1, PUSH rbx; handler 0x1100, data
		0x09, 0x01, 0x01, 0x00, 0x01, 0x30, 0x00, 0x00, 0x00, 0x11, 0x00, 0x00, 0xaa, 0xbb, 0xcc, 0xdd,
		// 0x3018: chained to 0x1000-0x1040 unwind 0x3000
		0x21, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x40, 0x10, 0x00, 0x00, 0x00, 0x30, 0x00, 0x00,
	}
	pdata := rfBytes(
		unwindinfo.RuntimeFunction{BeginAddress: 0x1000, EndAddress: 0x1040, UnwindData: 0x3000},
		unwindinfo.RuntimeFunction{BeginAddress: 0x1040, EndAddress: 0x1080, UnwindData: 0x3018},
		unwindinfo.RuntimeFunction{BeginAddress: 0x1080, EndAddress: 0x10c0, UnwindData: 0x3008},
		// indirect: points to the entry at 0x4030 below
		unwindinfo.RuntimeFunction{BeginAddress: 0x10c0, EndAddress: 0x10d0, UnwindData: 0x4030 | 1},
	)
	// not part of the table (outside the directory size): the target
	pdata = append(pdata, rfBytes(unwindinfo.RuntimeFunction{BeginAddress: 0x10c0, EndAddress: 0x10d0, UnwindData: 0x3000})...)
	text := make([]byte, 0x100)
	for i := range text {
		text[i] = 0xcc
	}
	return &synth{
		base: 0x140000000,
		sections: []synthSection{
			{name: ".text", va: 0x1000, data: text, vsize: 0x100},
			{name: ".bss", va: 0x2000, vsize: 0x80},
			{name: ".xdata", va: 0x3000, data: xdata},
			{name: ".pdata", va: 0x4000, data: pdata},
		},
		excRVA:  0x4000,
		excSize: 4 * 12,
	}
}

// rf returns a RuntimeFunction.
func rf(begin, end, unwind uint32) unwindinfo.RuntimeFunction {
	return unwindinfo.RuntimeFunction{BeginAddress: begin, EndAddress: end, UnwindData: unwind}
}
