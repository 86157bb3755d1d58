package minidump

import (
	"fmt"

	"github.com/fntable/fntable/internal/binread"
)

// Sizes of the MINIDUMP_MISC_INFO versions (minidumpapiset.h).
const (
	MiscInfoSize  = 24   // MINIDUMP_MISC_INFO
	MiscInfoSize2 = 44   // MINIDUMP_MISC_INFO_2: processor power information
	MiscInfoSize3 = 232  // MINIDUMP_MISC_INFO_3: integrity, execute flags, time zone
	MiscInfoSize4 = 832  // MINIDUMP_MISC_INFO_4: build strings
	MiscInfoSize5 = 1364 // MINIDUMP_MISC_INFO_5: XSTATE configuration, process cookie
)

// Flags1 bits of MINIDUMP_MISC_INFO: which fields are valid.
const (
	MINIDUMP_MISC1_PROCESS_ID            = 0x001
	MINIDUMP_MISC1_PROCESS_TIMES         = 0x002
	MINIDUMP_MISC1_PROCESSOR_POWER_INFO  = 0x004
	MINIDUMP_MISC3_PROCESS_INTEGRITY     = 0x010
	MINIDUMP_MISC3_PROCESS_EXECUTE_FLAGS = 0x020
	MINIDUMP_MISC3_TIMEZONE              = 0x040
	MINIDUMP_MISC3_PROTECTED_PROCESS     = 0x080
	MINIDUMP_MISC4_BUILDSTRING           = 0x100
	MINIDUMP_MISC5_PROCESS_COOKIE        = 0x200
)

// SystemTime is SYSTEMTIME.
type SystemTime struct {
	Year, Month, DayOfWeek, Day, Hour, Minute, Second, Milliseconds uint16
}

// TimeZoneInformation is TIME_ZONE_INFORMATION (172 bytes).
type TimeZoneInformation struct {
	Bias         int32 // minutes: UTC = local time + Bias
	StandardName string
	StandardDate SystemTime
	StandardBias int32
	DaylightName string
	DaylightDate SystemTime
	DaylightBias int32
}

// XStateFeature is XSTATE_FEATURE: where a processor state component is
// in the XSAVE area.
type XStateFeature struct {
	Offset uint32
	Size   uint32
}

// XStateConfigFeatureMscInfo is XSTATE_CONFIG_FEATURE_MSC_INFO, the XSAVE
// layout of the dumped system, needed to read XSTATE context tails.
type XStateConfigFeatureMscInfo struct {
	SizeOfInfo      uint32
	ContextSize     uint32
	EnabledFeatures uint64
	Features        [64]XStateFeature
}

// MiscInfo is MINIDUMP_MISC_INFO up to MINIDUMP_MISC_INFO_5. Fields beyond
// the version given by SizeOfInfo are zero; Flags1 tells which of the
// present ones are valid. Times are seconds: ProcessCreateTime since 1970
// (time_t), the others durations.
type MiscInfo struct {
	SizeOfInfo        uint32 // MiscInfoSize .. MiscInfoSize5
	Flags1            uint32 // MINIDUMP_MISC* bits
	ProcessId         uint32
	ProcessCreateTime uint32
	ProcessUserTime   uint32
	ProcessKernelTime uint32

	// MINIDUMP_MISC_INFO_2
	ProcessorMaxMhz           uint32
	ProcessorCurrentMhz       uint32
	ProcessorMhzLimit         uint32
	ProcessorMaxIdleState     uint32
	ProcessorCurrentIdleState uint32

	// MINIDUMP_MISC_INFO_3
	ProcessIntegrityLevel uint32
	ProcessExecuteFlags   uint32
	ProtectedProcess      uint32
	TimeZoneId            uint32
	TimeZone              TimeZoneInformation

	// MINIDUMP_MISC_INFO_4
	BuildString string // e.g. "19041.1.amd64fre.vb_release.191206-1406"
	DbgBldStr   string // e.g. "dbgcore.amd64,10.0.19041.789"

	// MINIDUMP_MISC_INFO_5
	XStateData    XStateConfigFeatureMscInfo
	ProcessCookie uint32
}

// MiscInfo decodes the MiscInfoStream. It returns nil and no error if the
// dump has none. The fields of each version are decoded when both
// SizeOfInfo and the stream's size cover them; a SizeOfInfo larger than
// the stream is reported in the error, with what the stream holds
// decoded.
func (f *File) MiscInfo() (*MiscInfo, error) {
	data, rva, ok, err := f.streamData(MiscInfoStream)
	if !ok || err != nil {
		return nil, err
	}
	r := binread.New("misc info", data, int64(rva))
	m := &MiscInfo{SizeOfInfo: r.U32()}
	if err := r.Err(); err != nil {
		return nil, formatErr(err, "read misc info")
	}
	var sizeErr error
	size := int(min(m.SizeOfInfo, uint32(len(data))))
	if m.SizeOfInfo > uint32(len(data)) {
		sizeErr = &FormatError{Off: int64(rva), Msg: fmt.Sprintf("read misc info: SizeOfInfo beyond the %d-byte stream", len(data)), Val: m.SizeOfInfo, Err: ErrTruncated}
	}
	if size < MiscInfoSize {
		return nil, &FormatError{Off: int64(rva), Msg: "read misc info: too small", Val: m.SizeOfInfo, Err: ErrTruncated}
	}
	m.Flags1 = r.U32()
	m.ProcessId = r.U32()
	m.ProcessCreateTime = r.U32()
	m.ProcessUserTime = r.U32()
	m.ProcessKernelTime = r.U32()
	if size >= MiscInfoSize2 {
		m.ProcessorMaxMhz = r.U32()
		m.ProcessorCurrentMhz = r.U32()
		m.ProcessorMhzLimit = r.U32()
		m.ProcessorMaxIdleState = r.U32()
		m.ProcessorCurrentIdleState = r.U32()
	}
	if size >= MiscInfoSize3 {
		m.ProcessIntegrityLevel = r.U32()
		m.ProcessExecuteFlags = r.U32()
		m.ProtectedProcess = r.U32()
		m.TimeZoneId = r.U32()
		tz := &m.TimeZone
		tz.Bias = int32(r.U32())
		tz.StandardName = decodeUTF16(r.Bytes(64))
		tz.StandardDate = readSystemTime(&r)
		tz.StandardBias = int32(r.U32())
		tz.DaylightName = decodeUTF16(r.Bytes(64))
		tz.DaylightDate = readSystemTime(&r)
		tz.DaylightBias = int32(r.U32())
	}
	if size >= MiscInfoSize4 {
		m.BuildString = decodeUTF16(r.Bytes(2 * 260)) // WCHAR[MAX_PATH]
		m.DbgBldStr = decodeUTF16(r.Bytes(2 * 40))    // WCHAR[40]
	}
	if size >= MiscInfoSize5 {
		x := &m.XStateData
		x.SizeOfInfo = r.U32()
		x.ContextSize = r.U32()
		x.EnabledFeatures = r.U64()
		for i := range x.Features {
			x.Features[i] = XStateFeature{Offset: r.U32(), Size: r.U32()}
		}
		m.ProcessCookie = r.U32()
	}
	if err := r.Err(); err != nil {
		return m, formatErr(err, "read misc info")
	}
	return m, sizeErr
}

func readSystemTime(r *binread.Reader) SystemTime {
	return SystemTime{r.U16(), r.U16(), r.U16(), r.U16(), r.U16(), r.U16(), r.U16(), r.U16()}
}
