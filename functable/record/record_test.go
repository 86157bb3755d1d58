package record

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"testing"
)

// electronNative is the 112-byte native DYNAMIC_FUNCTION_TABLE of the
// Windows 10 1607 dump electron-node-minidump-windows-x64.dmp of the
// shared test data (its function-table stream at RVA 0x2234, bytes
// 0x3c to 0xac): an RF_SORTED table of V8 whose bytes 0x38 to 0x4f hold
// the junk UTF-16 text `\electron-v1`, and an empty TreeNode.
const electronNative = "70323667ff7f000070323667ff7f00000000a0ca1f000000e6fce7809f25d201" +
	"0000a0ca1f0000000000a0ea1f0000000000a0ca1f0000005c0065006c006500" +
	"6300740072006f006e002d007600310000000000010000000000000000000000" +
	"00000000000000000000000000000000"

func sampleRecord() DynamicFunctionTable {
	return DynamicFunctionTable{
		Flink: 0x1111111111111110, Blink: 0x2222222222222220,
		FunctionTable: 0x3333333333333333, TimeStamp: 0x01d2259f80e7fce6,
		MinimumAddress: 0x1fcaa00000, MaximumAddress: 0x1feaa00000, BaseAddress: 0x1fca000000,
		Callback: 0x7fff00001000, Context: 0xc0ffee, OutOfProcessCallbackDll: 0x7fff00002000,
		Type: RF_CALLBACK, EntryCount: 7,
	}
}

func TestDecodeDynamicFunctionTableLayouts(t *testing.T) {
	electron, err := hex.DecodeString(electronNative)
	if err != nil || len(electron) != DynamicFunctionTableSizeWin10 {
		t.Fatalf("electron record: %d bytes, %v", len(electron), err)
	}
	win := sampleRecord()
	pub := win
	pub.MaximumEntryCount, pub.Flags = 9, RecFlagGrowable
	tests := []struct {
		name string
		b    []byte
		want DynamicFunctionTable
	}{
		{"win7", win.AppendWin7(nil), win},
		{"win10", win.AppendWindows(nil, DynamicFunctionTableSizeWin10), win},
		{"win11", win.AppendWindows(nil, DynamicFunctionTableSizeWin11), win},
		{"published", pub.AppendPublished(nil), pub},
		{"unknown windows size", append(win.AppendWin7(nil), make([]byte, 0xa0-0x58)...), win},
		{"electron (windows 10 1607)", electron, DynamicFunctionTable{
			Flink: 0x7fff67363270, Blink: 0x7fff67363270, FunctionTable: 0x1fcaa00000,
			TimeStamp: 0x1d2259f80e7fce6, MinimumAddress: 0x1fcaa00000, MaximumAddress: 0x1feaa00000,
			BaseAddress: 0x1fcaa00000, Callback: 0x65006c0065005c, Context: 0x6f007200740063,
			OutOfProcessCallbackDll: 0x310076002d006e, Type: RF_SORTED, EntryCount: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeDynamicFunctionTable(tc.b)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("decoded\n %+v\nwant\n %+v", got, tc.want)
			}
		})
	}
	// The published layout of a later version: longer, our fields kept.
	long := append(pub.AppendPublished(nil), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	if got, err := DecodePublishedRecord(long); err != nil || got != pub {
		t.Errorf("DecodePublishedRecord(0x68 bytes) = %+v, %v; want %+v", got, err, pub)
	}
	// Windows' layouts have no MaximumEntryCount: a Windows 10 record's
	// TreeNode is not read as one.
	tree := win.AppendWindows(nil, DynamicFunctionTableSizeWin10)
	binary.LittleEndian.PutUint64(tree[0x58:], 0xdeadbeefdeadbeef)
	if got, _ := DecodeDynamicFunctionTable(tree); got != win {
		t.Errorf("windows 10 record with a tree node: %+v", got)
	}
}

// TestRecordOffsets checks the encoders against the Rec* offsets the
// publisher writes with.
func TestRecordOffsets(t *testing.T) {
	tb := DynamicFunctionTable{Flink: 1, Blink: 2, FunctionTable: 3, TimeStamp: 4, MinimumAddress: 5,
		MaximumAddress: 6, BaseAddress: 7, Callback: 8, Context: 9, OutOfProcessCallbackDll: 10,
		Type: 11, EntryCount: 12, MaximumEntryCount: 13, Flags: 14}
	b := tb.AppendPublished(nil)
	if len(b) != RecordSize {
		t.Fatalf("published record of %d bytes", len(b))
	}
	le := binary.LittleEndian
	u64 := map[int]uint64{RecListEntry: 1, RecListEntry + 8: 2, RecFunctionTable: 3, RecTimeStamp: 4, RecMinimumAddress: 5,
		RecMaximumAddress: 6, RecBaseAddress: 7, RecCallback: 8, RecContext: 9, RecOutOfProcessCallbackDll: 10}
	for off, v := range u64 {
		if got := le.Uint64(b[off:]); got != v {
			t.Errorf("u64 at %#x = %d, want %d", off, got, v)
		}
	}
	u32 := map[int]uint32{RecType: 11, RecEntryCount: 12, RecMaximumEntryCount: 13, RecFlags: 14}
	for off, v := range u32 {
		if got := le.Uint32(b[off:]); got != v {
			t.Errorf("u32 at %#x = %d, want %d", off, got, v)
		}
	}
	for _, size := range []int{DynamicFunctionTableSizeWin7, DynamicFunctionTableSizeWin10, DynamicFunctionTableSizeWin11} {
		w := tb.AppendWindows([]byte{0xaa}, size)
		if len(w) != 1+size || !bytes.Equal(w[1:1+DynamicFunctionTableSizeWin7], b[:DynamicFunctionTableSizeWin7]) {
			t.Errorf("AppendWindows(%#x) = % x", size, w)
		}
		if !bytes.Equal(w[1+DynamicFunctionTableSizeWin7:], make([]byte, size-DynamicFunctionTableSizeWin7)) {
			t.Errorf("AppendWindows(%#x): tree node not zero", size)
		}
	}
}

func TestDecodeDynamicFunctionTableShort(t *testing.T) {
	for _, n := range []int{0, 1, DynamicFunctionTableSizeWin7 - 1} {
		if _, err := DecodeDynamicFunctionTable(make([]byte, n)); !errors.Is(err, ErrShortRecord) {
			t.Errorf("%d bytes: %v, want ErrShortRecord", n, err)
		}
	}
	if _, err := DecodePublishedRecord(make([]byte, RecordSize-1)); !errors.Is(err, ErrShortRecord) {
		t.Errorf("published record of %d bytes: %v", RecordSize-1, err)
	}
}

func TestAppendWindowsBadSize(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("AppendWindows(0x60) did not panic")
		}
	}()
	DynamicFunctionTable{}.AppendWindows(nil, RecordSize)
}

// FuzzDecodeDynamicFunctionTable decodes arbitrary records: no input may
// panic, a record of a known layout must re-encode to its bytes (less
// what the layout does not keep), and a short one must fail.
func FuzzDecodeDynamicFunctionTable(f *testing.F) {
	win := sampleRecord()
	f.Add(win.AppendWin7(nil))
	f.Add(win.AppendWindows(nil, DynamicFunctionTableSizeWin10))
	f.Add(win.AppendWindows(nil, DynamicFunctionTableSizeWin11))
	f.Add(win.AppendPublished(nil))
	if b, err := hex.DecodeString(electronNative); err == nil {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeDynamicFunctionTable(b)
		pub, perr := DecodePublishedRecord(b)
		if len(b) < DynamicFunctionTableSizeWin7 {
			if !errors.Is(err, ErrShortRecord) {
				t.Fatalf("%d bytes: %v", len(b), err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < RecordSize != (perr != nil) {
			t.Fatalf("DecodePublishedRecord of %d bytes: %v", len(b), perr)
		}
		_ = got.Type.String()
		switch len(b) {
		case RecordSize:
			if enc := got.AppendPublished(nil); !bytes.Equal(enc, b) {
				t.Fatalf("re-encoded published record differs:\n% x\n% x", enc, b)
			}
		case DynamicFunctionTableSizeWin7, DynamicFunctionTableSizeWin10, DynamicFunctionTableSizeWin11:
			if got.MaximumEntryCount != 0 || got.Flags != 0 {
				t.Fatalf("windows record with fntable fields: %+v", got)
			}
			enc := got.AppendWindows(nil, len(b))
			if !bytes.Equal(enc[:DynamicFunctionTableSizeWin7], b[:DynamicFunctionTableSizeWin7]) {
				t.Fatalf("re-encoded windows record differs:\n% x\n% x", enc, b)
			}
		}
		if perr == nil {
			common := pub
			common.MaximumEntryCount, common.Flags = 0, 0
			if len(b) != RecordSize && common != got {
				t.Fatalf("published and windows decodings disagree: %+v, %+v", pub, got)
			}
		}
	})
}
