package symhandler

// Event is a typed notification: what the CBA_* callbacks carry, as Go
// values, for Config.Progress. It is one of [ModuleLoadStarted],
// [SymbolsLoaded], [ModuleLoadFailed], [SymbolsUnloaded], [Progress],
// [Message] and [OptionsChanged].
type Event interface{ event() }

// ModuleLoadStarted: a module's symbols start loading
// (CBA_DEFERRED_SYMBOL_LOAD_START).
type ModuleLoadStarted struct {
	Module string
	Base   uint64
	File   string
	Retry  bool // a retry with a file a callback supplied
}

// SymbolsLoaded: a module's symbols are loaded
// (CBA_DEFERRED_SYMBOL_LOAD_COMPLETE).
type SymbolsLoaded struct {
	Module    string
	Base      uint64
	File      string // the image
	DebugFile string // the file the symbols came from, when not the image
	Count     int    // symbols
	Type      SymType
}

// ModuleLoadFailed: a load failed (CBA_DEFERRED_SYMBOL_LOAD_FAILURE, or
// _PARTIAL when the image itself could not be read).
type ModuleLoadFailed struct {
	Module  string
	Base    uint64
	File    string
	Partial bool
	Err     error
}

// SymbolsUnloaded: a module was unloaded (CBA_SYMBOLS_UNLOADED).
type SymbolsUnloaded struct {
	Module string
	Base   uint64
}

// Message: a status line or a problem (CBA_EVENT without progress).
type Message struct {
	Severity Severity
	Text     string
}

// OptionsChanged: SetOptions changed the options (CBA_SET_OPTIONS).
type OptionsChanged struct{ Options Options }

func (ModuleLoadStarted) event() {}
func (SymbolsLoaded) event()     {}
func (ModuleLoadFailed) event()  {}
func (SymbolsUnloaded) event()   {}
func (Progress) event()          {}
func (Message) event()           {}
func (OptionsChanged) event()    {}

// typed converts a callback's action and payload to an Event; nil for the
// actions that are questions (cancel, read memory, duplicates) or
// diagnostics.
func typed(action Action, data any) Event {
	switch action {
	case CBA_DEFERRED_SYMBOL_LOAD_START:
		if d, ok := data.(*DeferredSymbolLoad); ok {
			return ModuleLoadStarted{Module: d.Module, Base: d.BaseOfImage, File: d.FileName, Retry: d.Reparse}
		}
	case CBA_DEFERRED_SYMBOL_LOAD_COMPLETE:
		if d, ok := data.(*DeferredSymbolLoad); ok {
			return SymbolsLoaded{Module: d.Module, Base: d.BaseOfImage, File: d.FileName, DebugFile: d.DebugFile, Count: d.Symbols, Type: d.Type}
		}
	case CBA_DEFERRED_SYMBOL_LOAD_FAILURE, CBA_DEFERRED_SYMBOL_LOAD_PARTIAL:
		if d, ok := data.(*DeferredSymbolLoad); ok {
			return ModuleLoadFailed{Module: d.Module, Base: d.BaseOfImage, File: d.FileName, Partial: action == CBA_DEFERRED_SYMBOL_LOAD_PARTIAL, Err: d.Err}
		}
	case CBA_SYMBOLS_UNLOADED:
		if d, ok := data.(*DeferredSymbolLoad); ok {
			return SymbolsUnloaded{Module: d.Module, Base: d.BaseOfImage}
		}
	case CBA_EVENT:
		if e, ok := data.(*CBAEvent); ok {
			if e.Progress != nil {
				return *e.Progress
			}
			return Message{Severity: e.Severity, Text: e.Desc}
		}
	case CBA_SET_OPTIONS:
		if o, ok := data.(Options); ok {
			return OptionsChanged{o}
		}
	}
	return nil
}
