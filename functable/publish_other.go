//go:build !linux && !windows

package functable

func newPublisher() (publisher, error) { return nil, ErrUnsupported }
