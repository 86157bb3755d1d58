//go:build linux

package functable

func newPublisher() (publisher, error) { return nil, ErrUnsupported }
