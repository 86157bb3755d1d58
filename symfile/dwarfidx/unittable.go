package dwarfidx

import "encoding/binary"

// The unit table is what indexing .debug_info reads from every unit,
// written out so that the next process can skip those reads
// (Sections.Units, Index.UnitTable): the unit headers that newDecoder
// finds by walking the section, and the address ranges indexUnits reads
// from the DIEs of the units that .debug_aranges does not list. The walk
// reads one header per unit, scattered over the whole section: about
// 1,300 of the 1,415 pages of libc's 5.8 MB .debug_info, each a first
// touch in a new process; 126 of its 2,063 units have no aranges.
//
// Layout, little-endian: the magic "FNTUNIT2", the length of .debug_info
// (8 bytes), the number of units (4 bytes), then one record per unit:
// start, end, first DIE and abbreviation table offsets (8 bytes each),
// version, address size, offset size, and 1 for a compile or partial
// unit (1 byte each), 4 bytes of zeros; then the number of DIE ranges (4
// bytes) and one record per range: the unit's index (4 bytes), 4 bytes
// of zeros, low and high address (8 bytes each), in the order of the
// units.
const (
	unitTableMagic  = "FNTUNIT2"
	unitTableHeader = 8 + 8 + 4
	unitRecord      = 40
	rangeRecord     = 24
)

// dieRange is an address range of unit number unit, read from its DIE.
type dieRange struct {
	unit   int32
	lo, hi uint64
}

// appendUnitTable appends the table of units, the headers of an info
// section of infoLen bytes, and of ranges to b.
func appendUnitTable(b []byte, infoLen int, units []*unitHdr, ranges []dieRange) []byte {
	b = append(b, unitTableMagic...)
	b = binary.LittleEndian.AppendUint64(b, uint64(infoLen))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(units)))
	for _, u := range units {
		b = binary.LittleEndian.AppendUint64(b, uint64(u.start))
		b = binary.LittleEndian.AppendUint64(b, uint64(u.end))
		b = binary.LittleEndian.AppendUint64(b, uint64(u.first))
		b = binary.LittleEndian.AppendUint64(b, u.abbrevOff)
		cu := byte(0)
		if u.cu {
			cu = 1
		}
		b = append(b, byte(u.version), byte(u.addrSize), byte(u.offSize), cu, 0, 0, 0, 0)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ranges)))
	for _, r := range ranges {
		b = binary.LittleEndian.AppendUint32(b, uint32(r.unit))
		b = binary.LittleEndian.AppendUint32(b, 0)
		b = binary.LittleEndian.AppendUint64(b, r.lo)
		b = binary.LittleEndian.AppendUint64(b, r.hi)
	}
	return b
}

// parseUnitTable returns the units and DIE ranges a table describes, or
// ok false when it is not a table of an info section of infoLen bytes
// (and an abbreviation section of abbrevLen) whose units are in order,
// do not overlap and have headers newDecoder would accept, and whose
// ranges are non-empty, of compile units, in their order, with zeros
// where the layout has them: a table it accepts is the one
// appendUnitTable writes for what it returns. It does not
// read the sections: a table that passes but lies gives units whose DIEs
// decode as malformed ones do, and wrong ranges.
func parseUnitTable(t []byte, infoLen, abbrevLen int) (units []*unitHdr, ranges map[int][][2]uint64, ok bool) {
	if len(t) < unitTableHeader || string(t[:8]) != unitTableMagic ||
		binary.LittleEndian.Uint64(t[8:]) != uint64(infoLen) {
		return nil, nil, false
	}
	n := uint64(binary.LittleEndian.Uint32(t[16:]))
	t = t[unitTableHeader:]
	if uint64(len(t)) < n*unitRecord+4 || n > uint64(infoLen) {
		return nil, nil, false
	}
	recs, t := t[:n*unitRecord], t[n*unitRecord:]
	m := uint64(binary.LittleEndian.Uint32(t))
	if uint64(len(t)-4) != m*rangeRecord {
		return nil, nil, false
	}
	block := make([]unitHdr, n)
	units = make([]*unitHdr, n)
	prevEnd := uint64(0)
	for i := range block {
		r := recs[i*unitRecord : (i+1)*unitRecord]
		start := binary.LittleEndian.Uint64(r)
		end := binary.LittleEndian.Uint64(r[8:])
		first := binary.LittleEndian.Uint64(r[16:])
		abbrev := binary.LittleEndian.Uint64(r[24:])
		version, addrSize, offSize, cu := r[32], r[33], r[34], r[35]
		if binary.LittleEndian.Uint32(r[36:]) != 0 || start < prevEnd || first <= start || end <= first || end > uint64(infoLen) ||
			abbrev >= uint64(abbrevLen) || version < 2 || version > 5 ||
			(addrSize != 4 && addrSize != 8) || (offSize != 4 && offSize != 8) || cu > 1 {
			return nil, nil, false
		}
		prevEnd = end
		u := &block[i]
		u.start, u.end, u.first, u.abbrevOff = int(start), int(end), int(first), abbrev
		u.version, u.addrSize, u.offSize, u.cu = int(version), int(addrSize), int(offSize), cu == 1
		units[i] = u
	}
	ranges = make(map[int][][2]uint64)
	prev := uint64(0)
	for i := range m {
		rec := t[4+i*rangeRecord : 4+(i+1)*rangeRecord]
		// Compared as read, before any conversion to int: a unit of
		// 0xffffffff must not become -1 where int has 32 bits.
		u := uint64(binary.LittleEndian.Uint32(rec))
		lo, hi := binary.LittleEndian.Uint64(rec[8:]), binary.LittleEndian.Uint64(rec[16:])
		if binary.LittleEndian.Uint32(rec[4:]) != 0 || u < prev || u >= uint64(len(units)) || !units[u].cu || lo >= hi {
			return nil, nil, false
		}
		prev = u
		ranges[int(u)] = append(ranges[int(u)], [2]uint64{lo, hi})
	}
	return units, ranges, true
}
