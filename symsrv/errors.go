package symsrv

import (
	"errors"
	"fmt"

	"github.com/fntable/fntable/symfile"
)

// These are the errors returned by the fetch methods and [ReadPDBInfo].
// Fetch errors also come as *[MismatchError] and *[ServerError], and PDB
// decoding errors as *[FormatError].
var (
	// ErrNotFound: no element of the search path has the file. Every
	// server that was asked answered 404 (or was skipped because it had
	// answered 404 within MissTTL), and no directory or cache holds a
	// matching file. It is never returned when a server failed otherwise.
	ErrNotFound = errors.New("symbol file not found")
	// ErrCanceled: the progress function returned false, or the context
	// was canceled, before the file was ready. It is symfile.ErrCanceled,
	// so that callers of the symbol handler need test for one value only.
	ErrCanceled = symfile.ErrCanceled
	// ErrTimeout is the Err of a *ServerError when a server sent no data
	// for Client.Timeout, or (wrapped) when a download took longer than
	// Client.MaxTime.
	ErrTimeout = errors.New("no data from server within the timeout")
	// ErrTooLarge is the Err of a *ServerError when a file is larger than
	// Client.MaxSize.
	ErrTooLarge = errors.New("file larger than the size limit")
	// ErrMalformed matches every error about a malformed PDB.
	ErrMalformed = errors.New("malformed pdb")
	// ErrNotPDB: the data does not start with the MSF 7.00 superblock
	// magic (it is not a PDB, or a PDB 2.0 which RSDS records never name).
	ErrNotPDB = errors.New("not an msf 7.00 pdb file")
)

// MismatchError reports a file that is not the one asked for: a server
// sent the wrong file, a truncated one, or something that is not a symbol
// file at all. Such a file never enters the cache.
type MismatchError struct {
	Source string // URL or path the file came from
	Want   string // the identity asked for: hex build ID, PE image index, or PDB index (GUID and age)
	Got    string // the identity found, in the same form; "" when the file could not be identified
	Err    error  // why the file could not be identified, when Got is ""
}

func (e *MismatchError) Error() string {
	if e.Got != "" {
		return fmt.Sprintf("verify %s: want %s, got %s", e.Source, e.Want, e.Got)
	}
	return fmt.Sprintf("verify %s: want %s: %v", e.Source, e.Want, e.Err)
}

// Unwrap returns Err.
func (e *MismatchError) Unwrap() error { return e.Err }

// ServerError reports a server that failed: an HTTP status other than
// 200, 404 and 410, or a transport error (connection refused or reset, a
// timeout, a body cut short). Status is 0 for transport errors.
type ServerError struct {
	URL      string // the file's URL
	Status   int    // HTTP status code, or 0
	Err      error  // transport error, ErrTimeout, ErrTooLarge, or nil
	Attempts int    // requests made, the first one and its retries
}

func (e *ServerError) Error() string {
	s := "fetch " + e.URL + ": "
	if e.Status != 0 {
		s += fmt.Sprintf("http status %d", e.Status)
	} else if e.Err != nil {
		s += e.Err.Error()
	} else {
		s += "failed"
	}
	if e.Attempts > 1 {
		s += fmt.Sprintf(" (%d attempts)", e.Attempts)
	}
	return s
}

// Unwrap returns Err.
func (e *ServerError) Unwrap() error { return e.Err }

// retryable reports whether a request that failed this way is worth
// repeating: server errors (5xx), 408 and 429, and transport errors other
// than an oversized file or a download past MaxTime.
func (e *ServerError) retryable() bool {
	if e.Status != 0 {
		return e.Status >= 500 || e.Status == 408 || e.Status == 429
	}
	return !errors.Is(e.Err, ErrTooLarge) && e.Err != errMaxTime
}
