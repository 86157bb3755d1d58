package debugfile

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// patch returns b with the uint32 at off set to v.
func patch(b []byte, off int, v uint32) []byte {
	b = bytes.Clone(b)
	binary.LittleEndian.PutUint32(b[off:], v)
	return b
}

type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// note encodes one ELF note with the given padding.
func note(bo byteOrder, name string, typ uint32, desc []byte, pad int) []byte {
	up := func(b []byte) []byte {
		for len(b)%pad != 0 {
			b = append(b, 0)
		}
		return b
	}
	b := bo.AppendUint32(nil, uint32(len(name)))
	b = bo.AppendUint32(b, uint32(len(desc)))
	b = bo.AppendUint32(b, typ)
	b = append(b, up([]byte(name))...)
	return append(b, up(bytes.Clone(desc))...)
}

func TestFindBuildID(t *testing.T) {
	le, be := binary.LittleEndian, binary.BigEndian
	id := []byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	abiTag := note(le, "GNU\x00", 1, []byte{0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}, 4)
	cases := []struct {
		name  string
		b     []byte
		bo    binary.ByteOrder
		align uint64
		want  []byte
	}{
		{"build id", note(le, "GNU\x00", 3, id, 4), le, 4, id},
		{"big-endian", note(be, "GNU\x00", 3, id, 4), be, 4, id},
		{"after an ABI tag", append(bytes.Clone(abiTag), note(le, "GNU\x00", 3, id, 4)...), le, 4, id},
		{"8-aligned", append(note(le, "GNU\x00", 5, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, 8), note(le, "GNU\x00", 3, id, 8)...), le, 8, id},
		{"name without NUL", note(le, "GNU", 3, id[:3], 4), le, 4, id[:3]},
		{"odd-length id", note(le, "GNU\x00", 3, id[:5], 4), le, 4, id[:5]},
		{"other owner", note(le, "Go\x00\x00", 3, id, 4), le, 4, nil},
		{"ABI tag only", abiTag, le, 4, nil},
		{"empty id", note(le, "GNU\x00", 3, nil, 4), le, 4, nil},
		{"empty", nil, le, 4, nil},
		{"short header", []byte{4, 0, 0, 0, 20, 0, 0}, le, 4, nil},
		{"truncated id", note(le, "GNU\x00", 3, id, 4)[:30], le, 4, nil},
		{"huge name size", patch(note(le, "GNU\x00", 3, id, 4), 0, 0xfffffff0), le, 4, nil},
		{"huge id size", patch(note(le, "GNU\x00", 3, id, 4), 4, 0xffffffff), le, 4, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := findBuildID(bytes.NewReader(tc.b), tc.bo, tc.align)
			if !bytes.Equal(got, tc.want) {
				t.Errorf("got %x, want %x", got, tc.want)
			}
		})
	}
}

// FuzzBuildIDNotes scans arbitrary bytes as ELF notes: no panic, and a
// build ID found lies inside the input.
func FuzzBuildIDNotes(f *testing.F) {
	f.Add(note(binary.LittleEndian, "GNU\x00", 3, []byte{1, 2, 3, 4}, 4), uint8(4), false)
	f.Add(note(binary.BigEndian, "GNU\x00", 3, []byte{1, 2, 3, 4, 5, 6, 7, 8}, 8), uint8(8), true)
	f.Fuzz(func(t *testing.T, b []byte, align uint8, big bool) {
		var bo binary.ByteOrder = binary.LittleEndian
		if big {
			bo = binary.BigEndian
		}
		if id := findBuildID(bytes.NewReader(b), bo, uint64(align)); id != nil && !bytes.Contains(b, id) {
			t.Fatalf("build id %x not in the input", id)
		}
	})
}
