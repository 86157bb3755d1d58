package minidump

import (
	"encoding/binary"
	"fmt"

	"github.com/fntable/fntable/internal/binread"
)

// ProcessorArchitecture is the PROCESSOR_ARCHITECTURE_* value of
// MINIDUMP_SYSTEM_INFO (winnt.h).
type ProcessorArchitecture uint16

// Processor architectures (winnt.h).
const (
	PROCESSOR_ARCHITECTURE_INTEL          ProcessorArchitecture = 0 // x86
	PROCESSOR_ARCHITECTURE_MIPS           ProcessorArchitecture = 1
	PROCESSOR_ARCHITECTURE_ALPHA          ProcessorArchitecture = 2
	PROCESSOR_ARCHITECTURE_PPC            ProcessorArchitecture = 3
	PROCESSOR_ARCHITECTURE_SHX            ProcessorArchitecture = 4
	PROCESSOR_ARCHITECTURE_ARM            ProcessorArchitecture = 5
	PROCESSOR_ARCHITECTURE_IA64           ProcessorArchitecture = 6
	PROCESSOR_ARCHITECTURE_ALPHA64        ProcessorArchitecture = 7
	PROCESSOR_ARCHITECTURE_MSIL           ProcessorArchitecture = 8
	PROCESSOR_ARCHITECTURE_AMD64          ProcessorArchitecture = 9 // x64
	PROCESSOR_ARCHITECTURE_IA32_ON_WIN64  ProcessorArchitecture = 10
	PROCESSOR_ARCHITECTURE_NEUTRAL        ProcessorArchitecture = 11
	PROCESSOR_ARCHITECTURE_ARM64          ProcessorArchitecture = 12
	PROCESSOR_ARCHITECTURE_ARM32_ON_WIN64 ProcessorArchitecture = 13
	PROCESSOR_ARCHITECTURE_IA32_ON_ARM64  ProcessorArchitecture = 14
	PROCESSOR_ARCHITECTURE_UNKNOWN        ProcessorArchitecture = 0xffff
)

// VER_PLATFORM_WIN32_NT is the PlatformId of every Windows NT system.
// Breakpad writes its own values (0x8000 and up) for other systems.
const VER_PLATFORM_WIN32_NT = 2

// SystemInfo is MINIDUMP_SYSTEM_INFO (SystemInfoStream, 56 bytes).
type SystemInfo struct {
	ProcessorArchitecture ProcessorArchitecture
	ProcessorLevel        uint16 // CPU family for x86 and x64
	ProcessorRevision     uint16 // x86/x64: model<<8 | stepping
	NumberOfProcessors    uint8
	ProductType           uint8 // VER_NT_WORKSTATION 1, VER_NT_DOMAIN_CONTROLLER 2, VER_NT_SERVER 3
	MajorVersion          uint32
	MinorVersion          uint32
	BuildNumber           uint32
	PlatformId            uint32 // VER_PLATFORM_WIN32_NT on Windows
	CSDVersionRva         uint32 // MINIDUMP_STRING with the service pack, or 0
	SuiteMask             uint16 // VER_SUITE_* bits
	Reserved2             uint16
	Cpu                   [24]byte // CPU_INFORMATION union; see X86CpuInfo and ProcessorFeatures

	CSDVersion string // the string at CSDVersionRva, e.g. "Service Pack 2"
}

// X86CpuInfo is the X86CpuInfo member of CPU_INFORMATION: CPUID results
// that dbghelp and Breakpad store for x86 (and Breakpad also for x64).
type X86CpuInfo struct {
	VendorId               [3]uint32 // CPUID 0: EBX, EDX, ECX
	VersionInformation     uint32    // CPUID 1: EAX
	FeatureInformation     uint32    // CPUID 1: EDX
	AMDExtendedCpuFeatures uint32    // CPUID 0x80000001: EBX
}

// Vendor returns the vendor string, e.g. "GenuineIntel".
func (c X86CpuInfo) Vendor() string {
	var b [12]byte
	for i, v := range c.VendorId {
		binary.LittleEndian.PutUint32(b[4*i:], v)
	}
	return string(b[:])
}

// X86CpuInfo interprets Cpu as X86CpuInfo.
func (s *SystemInfo) X86CpuInfo() X86CpuInfo {
	le := binary.LittleEndian
	return X86CpuInfo{
		VendorId:               [3]uint32{le.Uint32(s.Cpu[0:]), le.Uint32(s.Cpu[4:]), le.Uint32(s.Cpu[8:])},
		VersionInformation:     le.Uint32(s.Cpu[12:]),
		FeatureInformation:     le.Uint32(s.Cpu[16:]),
		AMDExtendedCpuFeatures: le.Uint32(s.Cpu[20:]),
	}
}

// ProcessorFeatures interprets Cpu as OtherCpuInfo: a bit set of the
// PF_* values IsProcessorFeaturePresent reports, which dbghelp stores for
// architectures other than x86.
func (s *SystemInfo) ProcessorFeatures() [2]uint64 {
	return [2]uint64{binary.LittleEndian.Uint64(s.Cpu[0:]), binary.LittleEndian.Uint64(s.Cpu[8:])}
}

// systemInfoSize is the size of MINIDUMP_SYSTEM_INFO.
const systemInfoSize = 56

// SystemInfo decodes the SystemInfoStream. It returns nil and no error if
// the dump has none. A CSD version string that cannot be read leaves
// CSDVersion empty and is reported in the error, with the rest decoded.
func (f *File) SystemInfo() (*SystemInfo, error) {
	data, rva, ok, err := f.streamData(SystemInfoStream)
	if !ok || err != nil {
		return nil, err
	}
	r := binread.New("system info", data, int64(rva))
	s := &SystemInfo{
		ProcessorArchitecture: ProcessorArchitecture(r.U16()),
		ProcessorLevel:        r.U16(),
		ProcessorRevision:     r.U16(),
		NumberOfProcessors:    r.U8(),
		ProductType:           r.U8(),
		MajorVersion:          r.U32(),
		MinorVersion:          r.U32(),
		BuildNumber:           r.U32(),
		PlatformId:            r.U32(),
		CSDVersionRva:         r.U32(),
		SuiteMask:             r.U16(),
		Reserved2:             r.U16(),
	}
	copy(s.Cpu[:], r.Bytes(len(s.Cpu)))
	if err := r.Err(); err != nil {
		return nil, formatErr(err, "read system info")
	}
	if s.CSDVersionRva != 0 {
		s.CSDVersion, err = f.ReadString(s.CSDVersionRva)
		if err != nil {
			return s, fmt.Errorf("read system info: csd version: %w", err)
		}
	}
	return s, nil
}
