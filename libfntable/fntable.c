//go:build cgo && linux && amd64

/*
 * fntable.c: the C half of libfntable. It defines the public functions of
 * fntable.h with their exact winnt.h signatures; each calls its Go half
 * (lib.go), which returns an NTSTATUS, and records it for FntableLastError.
 * Pointers that Go computes as integers become pointers here.
 */
#include <stdint.h>
#include <string.h>

#include "fntable_impl.h"
#include "_cgo_export.h"

/* The status of the last call on this thread (GetLastError style). */
static __thread DWORD fntable_last_error;

DWORD FntableLastError(void) { return fntable_last_error; }

PRUNTIME_FUNCTION fntable_call_callback(uintptr_t callback, DWORD64 control_pc, uintptr_t context)
{
    return ((PGET_RUNTIME_FUNCTION_CALLBACK)callback)(control_pc, (PVOID)context);
}

BOOLEAN RtlAddFunctionTable(PRUNTIME_FUNCTION FunctionTable, DWORD EntryCount, DWORD64 BaseAddress)
{
    fntable_last_error = fntableAddFunctionTable(FunctionTable, EntryCount, BaseAddress);
    return fntable_last_error == STATUS_SUCCESS;
}

BOOLEAN RtlDeleteFunctionTable(PRUNTIME_FUNCTION FunctionTable)
{
    fntable_last_error = fntableDeleteFunctionTable((uintptr_t)FunctionTable);
    return fntable_last_error == STATUS_SUCCESS;
}

BOOLEAN RtlInstallFunctionTableCallback(DWORD64 TableIdentifier, DWORD64 BaseAddress, DWORD Length,
                                        PGET_RUNTIME_FUNCTION_CALLBACK Callback, PVOID Context,
                                        PCWSTR OutOfProcessCallbackDll)
{
    fntable_last_error = fntableInstallFunctionTableCallback(TableIdentifier, BaseAddress, Length,
                                                             (uintptr_t)Callback, (uintptr_t)Context,
                                                             (WCHAR *)OutOfProcessCallbackDll);
    return fntable_last_error == STATUS_SUCCESS;
}

DWORD RtlAddGrowableFunctionTable(PVOID *DynamicTable, PRUNTIME_FUNCTION FunctionTable, DWORD EntryCount,
                                  DWORD MaximumEntryCount, ULONG_PTR RangeBase, ULONG_PTR RangeEnd)
{
    uintptr_t handle = 0;
    if (DynamicTable == NULL)
        return fntable_last_error = STATUS_INVALID_PARAMETER;
    fntable_last_error = fntableAddGrowableFunctionTable(&handle, FunctionTable, EntryCount,
                                                         MaximumEntryCount, RangeBase, RangeEnd);
    if (fntable_last_error == STATUS_SUCCESS)
        *DynamicTable = (PVOID)handle;
    return fntable_last_error;
}

void RtlGrowFunctionTable(PVOID DynamicTable, DWORD NewEntryCount)
{
    fntable_last_error = fntableGrowFunctionTable((uintptr_t)DynamicTable, NewEntryCount);
}

void RtlDeleteGrowableFunctionTable(PVOID DynamicTable)
{
    fntable_last_error = fntableDeleteGrowableFunctionTable((uintptr_t)DynamicTable);
}

PRUNTIME_FUNCTION RtlLookupFunctionEntry(DWORD64 ControlPc, PDWORD64 ImageBase, PUNWIND_HISTORY_TABLE HistoryTable)
{
    DWORD64 entry = 0, base = 0;
    (void)HistoryTable;
    fntable_last_error = fntableLookupFunctionEntry(ControlPc, &entry, &base);
    if (entry == 0)
        base = 0;
    if (ImageBase != NULL)
        *ImageBase = base;
    return (PRUNTIME_FUNCTION)(uintptr_t)entry;
}

PEXCEPTION_ROUTINE RtlVirtualUnwind(DWORD HandlerType, DWORD64 ImageBase, DWORD64 ControlPc,
                                    PRUNTIME_FUNCTION FunctionEntry, PCONTEXT ContextRecord, PVOID *HandlerData,
                                    PDWORD64 EstablisherFrame, PKNONVOLATILE_CONTEXT_POINTERS ContextPointers)
{
    CONTEXT out;
    fntable_unwind_result res;
    int i;

    if (ContextRecord == NULL) {
        fntable_last_error = STATUS_INVALID_PARAMETER;
        return NULL;
    }
    memset(&res, 0, sizeof res);
    fntable_last_error = fntableVirtualUnwind(HandlerType, ImageBase, ControlPc, (uintptr_t)FunctionEntry,
                                              ContextRecord, &out, &res);
    if (fntable_last_error != STATUS_SUCCESS)
        return NULL;

    /* Only what an unwind changes: the integer registers, RIP and XMM0-15
       (which RtlVirtualUnwind writes, whatever ContextFlags says). */
    memcpy(&ContextRecord->Rax, &out.Rax, offsetof(CONTEXT, Rip) + sizeof out.Rip - offsetof(CONTEXT, Rax));
    memcpy(&ContextRecord->Xmm0, &out.Xmm0, 16 * sizeof(M128A));

    if (HandlerData != NULL)
        *HandlerData = res.handler != 0 ? (PVOID)(uintptr_t)res.handler_data : NULL;
    if (EstablisherFrame != NULL)
        *EstablisherFrame = res.establisher;
    if (ContextPointers != NULL) {
        for (i = 0; i < 16; i++) {
            if (res.integer[i] != 0)
                ContextPointers->IntegerContext[i] = (PULONG64)(uintptr_t)res.integer[i];
            if (res.floating[i] != 0)
                ContextPointers->FloatingContext[i] = (PM128A)(uintptr_t)res.floating[i];
        }
    }
    return (PEXCEPTION_ROUTINE)(uintptr_t)res.handler;
}
