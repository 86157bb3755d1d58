package cfi

import (
	"errors"
	"fmt"

	"github.com/fntable/fntable/internal/binread"
	"github.com/fntable/fntable/internal/filemap"
)

// These are the errors returned by the package besides [*FormatError]:
// conditions a caller may want to tell apart.
var (
	// ErrMalformed is wrapped by every [*FormatError]: the call-frame
	// information is not valid.
	ErrMalformed = errors.New("malformed call-frame information")

	// ErrExpressionTooComplex is returned when a DWARF expression runs
	// longer than [MaxExpressionSteps] operations or deeper than
	// [MaxExpressionStack] values.
	ErrExpressionTooComplex = errors.New("expression too complex")

	// ErrLimit is returned when input exceeds one of the other limits of
	// the package: [MaxStateDepth], [MaxRows], [MaxFDEs], [MaxSectionSize].
	ErrLimit = errors.New("limit exceeded")

	// ErrStopped is returned by [File.FDEs] when its callback returns false.
	ErrStopped = errors.New("enumeration stopped by its callback")

	// ErrClosed is returned by a [File] used after Close.
	ErrClosed = errors.New("file already closed")

	// ErrFileChanged is returned when a section mapped from the file
	// cannot be read any more: the file shrank after it was opened
	// (truncated, or rewritten in place as cp does). Files replaced by
	// rename, as package managers and linkers do, are not affected.
	ErrFileChanged = filemap.ErrChanged
)

// FormatError reports malformed call-frame information. Off is the offset
// in the section (.eh_frame, .eh_frame_hdr, .debug_frame) or, for an
// expression being evaluated, in the expression. Errors.Is(err,
// [ErrMalformed]) is true for every FormatError.
type FormatError struct {
	Off int64  // offset of the bad data
	Msg string // what is wrong
	Val any    // the offending value, or nil
}

func (e *FormatError) Error() string {
	msg := e.Msg
	if e.Val != nil {
		msg += fmt.Sprintf(" %v", e.Val)
	}
	return fmt.Sprintf("cfi: %s at offset %#x", msg, e.Off)
}

// Unwrap returns [ErrMalformed].
func (e *FormatError) Unwrap() error { return ErrMalformed }

// readerErr turns the sticky error of a binread.Reader into a FormatError.
func readerErr(r *binread.Reader) error {
	err := r.Err()
	if err == nil {
		return nil
	}
	var be *binread.Error
	if errors.As(err, &be) {
		if fe, ok := be.Err.(*FormatError); ok {
			return &FormatError{Off: be.Off, Msg: be.Name + ": " + fe.Msg, Val: fe.Val}
		}
		return &FormatError{Off: be.Off, Msg: be.Name + ": " + be.Err.Error()}
	}
	return &FormatError{Msg: err.Error()}
}
