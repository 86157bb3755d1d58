package memory

import (
	"errors"
	"syscall"
	"testing"
)

func TestErrors(t *testing.T) {
	for _, c := range []struct {
		name                 string
		err                  error
		unmapped, read, gone bool
	}{
		{"unmapped", &UnmappedError{Addr: 0x1000}, true, false, false},
		{"read", &ReadError{Addr: 0x1000, Err: syscall.EPERM}, false, true, false},
		{"read no cause", &ReadError{Addr: 0x1000}, false, true, false},
		{"gone", Gone(0x1000, syscall.ESRCH), false, true, true},
		{"gone no cause", Gone(0x1000, nil), false, true, true},
	} {
		var ue *UnmappedError
		var re *ReadError
		if !errors.Is(c.err, ErrShortRead) {
			t.Errorf("%s: %v does not match ErrShortRead", c.name, c.err)
		}
		if got := errors.As(c.err, &ue); got != c.unmapped {
			t.Errorf("%s: As UnmappedError = %v", c.name, got)
		}
		if got := errors.As(c.err, &re); got != c.read {
			t.Errorf("%s: As ReadError = %v", c.name, got)
		}
		if got := errors.Is(c.err, ErrTargetGone); got != c.gone {
			t.Errorf("%s: Is ErrTargetGone = %v", c.name, got)
		}
		if c.err.Error() == "" {
			t.Errorf("%s: empty message", c.name)
		}
	}
	if !errors.Is(Gone(1, syscall.ESRCH), syscall.ESRCH) {
		t.Error("Gone does not wrap its cause")
	}
}
