package functable

// The ntdll dynamic function table API (winnt.h). Functions that return
// BOOLEAN are declared with a byte result: only AL is defined on return.
// golang.org/x/sys/windows has RtlAddFunctionTable and
// RtlDeleteFunctionTable, but reads their BOOLEAN from all of RAX, and it
// lacks the growable and callback functions.
//
// References: Microsoft, "RtlAddFunctionTable", "RtlDeleteFunctionTable",
// "RtlInstallFunctionTableCallback", "RtlAddGrowableFunctionTable",
// "RtlGrowFunctionTable", "RtlDeleteGrowableFunctionTable",
// "RtlLookupFunctionEntry".

//go:generate go run golang.org/x/sys/windows/mkwinsyscall -output zsyscall_windows.go syscall_windows.go

//sys	rtlAddFunctionTable(functionTable *windows.RUNTIME_FUNCTION, entryCount uint32, baseAddress uint64) (ok byte) = ntdll.RtlAddFunctionTable
//sys	rtlDeleteFunctionTable(functionTable uintptr) (ok byte) = ntdll.RtlDeleteFunctionTable
//sys	rtlInstallFunctionTableCallback(tableIdentifier uint64, baseAddress uint64, length uint32, callback uintptr, context uintptr, outOfProcessCallbackDll *uint16) (ok byte) = ntdll.RtlInstallFunctionTableCallback
//sys	rtlAddGrowableFunctionTable(dynamicTable *uintptr, functionTable *windows.RUNTIME_FUNCTION, entryCount uint32, maximumEntryCount uint32, rangeBase uintptr, rangeEnd uintptr) (ntstatus error) = ntdll.RtlAddGrowableFunctionTable
//sys	rtlGrowFunctionTable(dynamicTable uintptr, newEntryCount uint32) = ntdll.RtlGrowFunctionTable
//sys	rtlDeleteGrowableFunctionTable(dynamicTable uintptr) = ntdll.RtlDeleteGrowableFunctionTable
//sys	rtlLookupFunctionEntry(controlPC uint64, imageBase *uint64, historyTable uintptr) (fn uintptr) = ntdll.RtlLookupFunctionEntry
