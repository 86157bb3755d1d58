package symhandler

import (
	"fmt"
	"strconv"
)

// Action is the ActionCode a callback receives: dbghelp's CBA_* values.
type Action uint32

// The CBA_* action codes of dbghelp.h. The payload each delivers is given
// with it; a callback that does not handle a code must return false.
const (
	CBA_DEFERRED_SYMBOL_LOAD_START            Action = 0x00000001 // *DeferredSymbolLoad: a module's symbols start loading
	CBA_DEFERRED_SYMBOL_LOAD_COMPLETE         Action = 0x00000002 // *DeferredSymbolLoad: loaded
	CBA_DEFERRED_SYMBOL_LOAD_FAILURE          Action = 0x00000003 // *DeferredSymbolLoad: failed; set FileName and return true to retry with that file
	CBA_SYMBOLS_UNLOADED                      Action = 0x00000004 // *DeferredSymbolLoad: the module's symbols were unloaded
	CBA_DUPLICATE_SYMBOL                      Action = 0x00000005 // *DuplicateSymbol: a name lookup matched several symbols; set SelectedSymbol and return true
	CBA_READ_MEMORY                           Action = 0x00000006 // *ReadMemory: the target could not supply memory; fill Buf, set BytesRead and return true
	CBA_DEFERRED_SYMBOL_LOAD_CANCEL           Action = 0x00000007 // *DeferredSymbolLoad: return true to cancel the load in progress
	CBA_SET_OPTIONS                           Action = 0x00000008 // Options: the options changed (the new value)
	CBA_EVENT                                 Action = 0x00000010 // *CBAEvent: status, problems, progress; return true when handled
	CBA_DEFERRED_SYMBOL_LOAD_PARTIAL          Action = 0x00000020 // *DeferredSymbolLoad: the image could not be read; set FileName and return true to retry
	CBA_DEBUG_INFO                            Action = 0x10000000 // string: a diagnostic line, only with SYMOPT_DEBUG
	CBA_SRCSRV_INFO                           Action = 0x20000000 // string: source server (not sent by this handler)
	CBA_SRCSRV_EVENT                          Action = 0x40000000 // *CBAEvent: source server (not sent by this handler)
	CBA_UPDATE_STATUS_BAR                     Action = 0x50000000 // undocumented by dbghelp; not sent
	CBA_ENGINE_PRESENT                        Action = 0x60000000 // undocumented by dbghelp; not sent
	CBA_CHECK_ENGOPT_DISALLOW_NETWORK_PATHS   Action = 0x70000000 // bool question: return true to forbid network paths (asked before a symbol server is contacted)
	CBA_CHECK_ARM_MACHINE_THUMB_TYPE_OVERRIDE Action = 0x80000000 // not sent (no ARM)
	CBA_XML_LOG                               Action = 0x90000000 // not sent
	CBA_MAP_JIT_SYMBOL                        Action = 0xA0000000 // *JITSymbolMap: an address fell in no module; return true after adding a module for it
)

var actionNames = map[Action]string{
	CBA_DEFERRED_SYMBOL_LOAD_START: "CBA_DEFERRED_SYMBOL_LOAD_START", CBA_DEFERRED_SYMBOL_LOAD_COMPLETE: "CBA_DEFERRED_SYMBOL_LOAD_COMPLETE",
	CBA_DEFERRED_SYMBOL_LOAD_FAILURE: "CBA_DEFERRED_SYMBOL_LOAD_FAILURE", CBA_SYMBOLS_UNLOADED: "CBA_SYMBOLS_UNLOADED",
	CBA_DUPLICATE_SYMBOL: "CBA_DUPLICATE_SYMBOL", CBA_READ_MEMORY: "CBA_READ_MEMORY",
	CBA_DEFERRED_SYMBOL_LOAD_CANCEL: "CBA_DEFERRED_SYMBOL_LOAD_CANCEL", CBA_SET_OPTIONS: "CBA_SET_OPTIONS",
	CBA_EVENT: "CBA_EVENT", CBA_DEFERRED_SYMBOL_LOAD_PARTIAL: "CBA_DEFERRED_SYMBOL_LOAD_PARTIAL",
	CBA_DEBUG_INFO: "CBA_DEBUG_INFO", CBA_SRCSRV_INFO: "CBA_SRCSRV_INFO", CBA_SRCSRV_EVENT: "CBA_SRCSRV_EVENT",
	CBA_UPDATE_STATUS_BAR: "CBA_UPDATE_STATUS_BAR", CBA_ENGINE_PRESENT: "CBA_ENGINE_PRESENT",
	CBA_CHECK_ENGOPT_DISALLOW_NETWORK_PATHS:   "CBA_CHECK_ENGOPT_DISALLOW_NETWORK_PATHS",
	CBA_CHECK_ARM_MACHINE_THUMB_TYPE_OVERRIDE: "CBA_CHECK_ARM_MACHINE_THUMB_TYPE_OVERRIDE",
	CBA_XML_LOG: "CBA_XML_LOG", CBA_MAP_JIT_SYMBOL: "CBA_MAP_JIT_SYMBOL",
}

// String returns the CBA_ name, or the value in hex.
func (a Action) String() string {
	if s, ok := actionNames[a]; ok {
		return s
	}
	return fmt.Sprintf("Action(%#x)", uint32(a))
}

// Callback is the PSYMBOL_REGISTERED_CALLBACK64 of this handler. h is the
// handler, action the CBA_* code, data its payload (see the constants)
// and userContext the value given to RegisterCallback.
//
// Callbacks of one handler are delivered one at a time, in the order the
// handler produced them, on the goroutine whose call produced them
// (deliveries from other goroutines wait their turn). No lock of the
// handler is held while a callback runs, so a callback may call any method
// of h; events those calls produce are delivered at once, nested, on the
// same goroutine. h is a handle on the handler that carries the delivery
// in progress: a callback calls back through it, on its own goroutine and
// before it returns, not through another reference to the handler (such a
// call waits for the delivery to end, that is, forever) nor from another
// goroutine. A callback must not wait for another goroutine that uses the
// handler, as that goroutine's events wait for the callback to return. A
// callback that panics ends the delivery: the panic reaches the caller of
// the handler's method, and later deliveries go on.
//
// A callback returns true when it handled the action (and, for the
// questions, when the answer is yes); for codes it does not know it must
// return false.
type Callback func(h *Handler, action Action, data any, userContext any) bool

// DeferredSymbolLoad is IMAGEHLP_DEFERRED_SYMBOL_LOAD64.
type DeferredSymbolLoad struct {
	BaseOfImage   uint64 // where the module is loaded
	CheckSum      uint32 // PE checksum; 0 for others
	TimeDateStamp uint32 // PE timestamp; 0 for others
	// FileName is the file being loaded. On CBA_DEFERRED_SYMBOL_LOAD_FAILURE
	// and _PARTIAL the callback may set it to another file and return true:
	// the handler then retries with that file (at most MaxRetries times).
	FileName string
	Reparse  bool   // set when this is a retry with a FileName a callback gave
	Flags    uint32 // DSLFLAG_* (none defined here)

	Module    string  // the module's name
	Err       error   // on FAILURE and PARTIAL: why
	DebugFile string  // on COMPLETE: the file the symbols came from, when not the image
	Symbols   int     // on COMPLETE: how many symbols were loaded
	Type      SymType // on COMPLETE: what kind of symbols
}

// MaxRetries bounds the retries one load makes with files supplied by
// callbacks on CBA_DEFERRED_SYMBOL_LOAD_FAILURE/_PARTIAL.
const MaxRetries = 4

// DuplicateSymbol is IMAGEHLP_DUPLICATE_SYMBOL64: a lookup by name matched
// several symbols.
type DuplicateSymbol struct {
	Symbols []Symbol // the candidates, in module then address order
	// SelectedSymbol is the index the callback picks; the lookup returns
	// Symbols[SelectedSymbol] when the callback returns true and the index
	// is valid, and Symbols[0] otherwise.
	SelectedSymbol int
}

// ReadMemory is IMAGEHLP_CBA_READ_MEMORY: the target could not supply
// Buf's bytes at Addr (or there is no target).
type ReadMemory struct {
	Addr      uint64
	Buf       []byte // fill Buf[:BytesRead]
	BytesRead int    // set by the callback
}

// Severity is the severity of a [CBAEvent], dbghelp's sevInfo..sevFatal.
type Severity uint32

const (
	SevInfo    Severity = 0 // status
	SevProblem Severity = 1 // something failed but the handler carries on
	SevAttn    Severity = 2 // needs the user's attention
	SevFatal   Severity = 3 // the operation cannot go on
)

// String returns "info", "problem", "attention" or "fatal".
func (s Severity) String() string {
	switch s {
	case SevInfo:
		return "info"
	case SevProblem:
		return "problem"
	case SevAttn:
		return "attention"
	case SevFatal:
		return "fatal"
	}
	return "Severity(" + strconv.Itoa(int(s)) + ")"
}

// EventCode tells what a [CBAEvent] is about.
type EventCode uint32

const (
	EventStatus           EventCode = 0 // a status or problem message
	EventDownload         EventCode = 1 // download progress: Progress is set
	EventIndex            EventCode = 2 // progress indexing debug information: Progress is set
	EventDebugFileFound   EventCode = 3 // a separate debug file was found: Object is its path
	EventIdentityMismatch EventCode = 4 // a candidate file does not match the module: Object is its path
)

// CBAEvent is IMAGEHLP_CBA_EVENT, the payload of CBA_EVENT.
type CBAEvent struct {
	Severity Severity
	Code     EventCode
	Desc     string // one line, for people
	Object   any    // what the event is about (a path, a *Progress, a module name)
	Progress *Progress
}

// Progress is the payload of download and indexing events, and the typed
// [Event] for them.
type Progress struct {
	Stage  string // "download" or "index"
	Module string
	File   string // the file or URL
	Done   int64  // bytes done
	Total  int64  // bytes in all; -1 when unknown
}

// JITSymbolMap is IMAGEHLP_JIT_SYMBOLMAP: an address the handler was asked
// about lies in no module.
type JITSymbolMap struct {
	Address     uint64
	BaseOfImage uint64 // set by the callback when it added a module (informational)
}

// registration is one RegisterCallback.
type registration struct {
	fn  Callback
	ctx any
}
