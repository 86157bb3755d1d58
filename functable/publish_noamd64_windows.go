//go:build !amd64

package functable

// Tables are forwarded to ntdll on windows/amd64 only: other Windows
// architectures have other RUNTIME_FUNCTION layouts.
func newPublisher() (publisher, error) { return nil, ErrUnsupported }
