//go:build linux

package remote

import (
	"fmt"
	"os"
	"strconv"
)

// Find returns the published lists of process pid, from /proc/PID/maps.
// A process without any has none (nil, nil).
func Find(pid int) ([]Mapping, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/maps")
	if err != nil {
		return nil, fmt.Errorf("find function table lists of process %d: %w", pid, err)
	}
	defer f.Close()
	ms, err := ParseMaps(f)
	if err != nil {
		return nil, fmt.Errorf("find function table lists of process %d: %w", pid, err)
	}
	return ms, nil
}
