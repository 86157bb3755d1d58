package minidump

//go:generate stringer -type=StreamType,ProcessorArchitecture -output=string.go

// StreamType is MINIDUMP_STREAM_TYPE, the type of a stream in the
// directory. The names are those of minidumpapiset.h; the Breakpad and
// Crashpad extensions are named after their MD_* constants in Breakpad's
// minidump_format.h and Crashpad's minidump_extensions.h.
type StreamType uint32

// Stream types of minidumpapiset.h.
const (
	UnusedStream              StreamType = 0
	ReservedStream0           StreamType = 1
	ReservedStream1           StreamType = 2
	ThreadListStream          StreamType = 3  // MINIDUMP_THREAD_LIST, see [File.Threads]
	ModuleListStream          StreamType = 4  // MINIDUMP_MODULE_LIST, see [File.Modules]
	MemoryListStream          StreamType = 5  // MINIDUMP_MEMORY_LIST, see [File.MemoryList]
	ExceptionStream           StreamType = 6  // MINIDUMP_EXCEPTION_STREAM, see [File.Exception]
	SystemInfoStream          StreamType = 7  // MINIDUMP_SYSTEM_INFO, see [File.SystemInfo]
	ThreadExListStream        StreamType = 8  // MINIDUMP_THREAD_EX_LIST
	Memory64ListStream        StreamType = 9  // MINIDUMP_MEMORY64_LIST, see [File.Memory64List]
	CommentStreamA            StreamType = 10 // ANSI comment
	CommentStreamW            StreamType = 11 // UTF-16 comment
	HandleDataStream          StreamType = 12 // MINIDUMP_HANDLE_DATA_STREAM
	FunctionTableStream       StreamType = 13 // MINIDUMP_FUNCTION_TABLE_STREAM, see [File.FunctionTables]
	UnloadedModuleListStream  StreamType = 14 // MINIDUMP_UNLOADED_MODULE_LIST, see [File.UnloadedModules]
	MiscInfoStream            StreamType = 15 // MINIDUMP_MISC_INFO(_2.._5), see [File.MiscInfo]
	MemoryInfoListStream      StreamType = 16 // MINIDUMP_MEMORY_INFO_LIST, see [File.MemoryInfoList]
	ThreadInfoListStream      StreamType = 17 // MINIDUMP_THREAD_INFO_LIST, see [File.ThreadInfoList]
	HandleOperationListStream StreamType = 18 // MINIDUMP_HANDLE_OPERATION_LIST
	TokenStream               StreamType = 19 // MINIDUMP_TOKEN_INFO_LIST
	JavaScriptDataStream      StreamType = 20
	SystemMemoryInfoStream    StreamType = 21 // MINIDUMP_SYSTEM_MEMORY_INFO_1
	ProcessVmCountersStream   StreamType = 22 // MINIDUMP_PROCESS_VM_COUNTERS_1/2
	IptTraceStream            StreamType = 23
	ThreadNamesStream         StreamType = 24 // MINIDUMP_THREAD_NAME_LIST, see [File.ThreadNames]

	LastReservedStream StreamType = 0xffff // types up to this one are reserved for Microsoft
)

// Stream types of the Breakpad and Crashpad extensions ("Gg" and "CP" in
// the high 16 bits).
const (
	BreakpadInfoStream            StreamType = 0x47670001 // MD_BREAKPAD_INFO_STREAM
	BreakpadAssertionInfoStream   StreamType = 0x47670002 // MD_ASSERTION_INFO_STREAM
	BreakpadLinuxCPUInfoStream    StreamType = 0x47670003 // MD_LINUX_CPU_INFO: /proc/cpuinfo
	BreakpadLinuxProcStatusStream StreamType = 0x47670004 // MD_LINUX_PROC_STATUS: /proc/PID/status
	BreakpadLinuxLSBReleaseStream StreamType = 0x47670005 // MD_LINUX_LSB_RELEASE: /etc/lsb-release
	BreakpadLinuxCmdLineStream    StreamType = 0x47670006 // MD_LINUX_CMD_LINE: /proc/PID/cmdline
	BreakpadLinuxEnvironStream    StreamType = 0x47670007 // MD_LINUX_ENVIRON: /proc/PID/environ
	BreakpadLinuxAuxvStream       StreamType = 0x47670008 // MD_LINUX_AUXV: /proc/PID/auxv
	BreakpadLinuxMapsStream       StreamType = 0x47670009 // MD_LINUX_MAPS: /proc/PID/maps
	BreakpadLinuxDSODebugStream   StreamType = 0x4767000a // MD_LINUX_DSO_DEBUG: the r_debug link map
	CrashpadInfoStream            StreamType = 0x43500001 // MD_CRASHPAD_INFO_STREAM
)

// Stream types of fntable's own extensions ("FT" in the high 16 bits).
const (
	// FntablePerfMapStream holds the process's perf map
	// (/tmp/perf-PID.map, "START SIZE name" lines): the names of its JIT
	// code, for symbolizing the dump's frames where the process and its
	// map file are gone.
	FntablePerfMapStream StreamType = 0x46540001
)
