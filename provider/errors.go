package provider

import (
	"errors"
	"fmt"
)

// These are the errors a [Resolution] carries (through [Resolver]) and
// [HelperMain] reports. Each error of the package matches exactly one of
// them with errors.Is.
var (
	// ErrUntrusted: the library is not on the trust list, or a file or
	// directory on its way is not safe; nothing was loaded.
	ErrUntrusted = errors.New("provider not trusted")
	// ErrLoad: the library could not be loaded, its export was not found,
	// or it changed between the trust check and the load.
	ErrLoad = errors.New("load provider")
	// ErrStatus: the provider returned a failure NTSTATUS (a *[StatusError]).
	ErrStatus = errors.New("provider failed")
	// ErrBadResult: the provider's answer failed a check (count, array,
	// entries, unwind data); none of its entries are used.
	ErrBadResult = errors.New("bad provider result")
	// ErrCrashed: the helper process of an isolated call died before it
	// answered (a signal, or an exit), or its answer was unreadable.
	ErrCrashed = errors.New("provider helper failed")
	// ErrTimeout: the helper process of an isolated call did not answer
	// within [Resolver.Timeout]; it was killed.
	ErrTimeout = errors.New("provider timed out")
	// ErrUnsupportedOS: providers are loaded on Linux only.
	ErrUnsupportedOS = errors.New("out-of-process providers are not supported on this OS")
)

// StatusError is a failure NTSTATUS (≥ 0x80000000) returned by a
// provider. It matches [ErrStatus].
type StatusError struct {
	Status uint32 // the NTSTATUS the provider returned
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("provider failed: status %#08x", e.Status)
}

// Unwrap returns [ErrStatus].
func (e *StatusError) Unwrap() error { return ErrStatus }

// kindError is an error with its own message that matches one sentinel.
type kindError struct {
	kind error  // the sentinel
	msg  string // the whole message
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// errorf returns an error matching kind whose message is the formatted
// text, without the sentinel's own.
func errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}
