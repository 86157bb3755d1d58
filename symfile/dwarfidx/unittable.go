package dwarfidx

import "encoding/binary"

// The unit table is the list of .debug_info's unit headers that
// newDecoder builds by walking the section, written out so that the next
// process can skip the walk (Sections.Units, Index.UnitTable). The walk
// reads one header per unit, scattered over the whole section: about
// 1,300 of the 1,415 pages of libc's 5.8 MB .debug_info, each a first
// touch in a new process. The table is 40 bytes a unit.
//
// Layout, little-endian: the magic "FNTUNIT1", the length of .debug_info
// (8 bytes), the number of units (4 bytes), then one record per unit:
// start, end, first DIE and abbreviation table offsets (8 bytes each),
// version, address size, offset size, and 1 for a compile or partial
// unit (1 byte each), 4 bytes of zeros.
const (
	unitTableMagic  = "FNTUNIT1"
	unitTableHeader = 8 + 8 + 4
	unitRecord      = 40
)

// appendUnitTable appends the table of units, the headers of an info
// section of infoLen bytes, to b.
func appendUnitTable(b []byte, infoLen int, units []*unitHdr) []byte {
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
	return b
}

// parseUnitTable returns the units a table describes, or ok false when
// it is not a table of an info section of infoLen bytes whose units are
// in order, do not overlap and have headers newDecoder would accept. It
// does not read the section: a table that passes but lies gives units
// whose DIEs decode as malformed ones do.
func parseUnitTable(t []byte, infoLen, abbrevLen int) (units []*unitHdr, ok bool) {
	if len(t) < unitTableHeader || string(t[:8]) != unitTableMagic ||
		binary.LittleEndian.Uint64(t[8:]) != uint64(infoLen) {
		return nil, false
	}
	n := uint64(binary.LittleEndian.Uint32(t[16:]))
	recs := t[unitTableHeader:]
	if uint64(len(recs)) != n*unitRecord {
		return nil, false
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
		if start < prevEnd || first <= start || end <= first || end > uint64(infoLen) ||
			abbrev >= uint64(abbrevLen) || version < 2 || version > 5 ||
			(addrSize != 4 && addrSize != 8) || (offSize != 4 && offSize != 8) || cu > 1 {
			return nil, false
		}
		prevEnd = end
		u := &block[i]
		u.start, u.end, u.first, u.abbrevOff = int(start), int(end), int(first), abbrev
		u.version, u.addrSize, u.offSize, u.cu = int(version), int(addrSize), int(offSize), cu == 1
		units[i] = u
	}
	return units, true
}
