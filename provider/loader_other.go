//go:build !linux

package provider

// library is a loaded provider library: none on this OS.
type library struct{}

// loadLibrary fails: providers are loaded on Linux only.
func loadLibrary(d Decision, uid uint32, cache bool) (*library, error) {
	return nil, ErrUnsupportedOS
}

// call fails: providers are loaded on Linux only.
func (lib *library) call(pid int, record uint64) (answer, error) {
	return answer{}, ErrUnsupportedOS
}
