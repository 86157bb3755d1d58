package capture

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/fntable/fntable/minidump"
)

// cpuidEDX1 names the bits of CPUID leaf 1's EDX (Intel SDM vol. 2A,
// table 3-11) as /proc/cpuinfo's "flags" line spells them.
var cpuidEDX1 = [32]string{
	"fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce",
	"cx8", "apic", "", "sep", "mtrr", "pge", "mca", "cmov",
	"pat", "pse36", "pn", "clflush", "", "dts", "acpi", "mmx",
	"fxsr", "sse", "sse2", "ss", "ht", "tm", "ia64", "pbe",
}

// machine is what a dump says of this machine rather than of the
// process: read before the process is stopped, as it does not change
// while it is.
type machine struct {
	info    minidump.WriteSystemInfo
	streams []minidump.RawStream // /proc/cpuinfo and /etc/lsb-release, as they are
}

// readMachine reads the machine's part of a dump; logf hears of a file
// that cannot be read (a missing /etc/lsb-release is not news).
func readMachine(logf func(format string, args ...any)) machine {
	var m machine
	cpuinfo, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		logf("%v", err)
	} else {
		m.streams = append(m.streams, minidump.RawStream{Type: minidump.BreakpadLinuxCPUInfoStream, Data: cpuinfo})
	}
	if lsb, err := os.ReadFile("/etc/lsb-release"); err == nil {
		m.streams = append(m.streams, minidump.RawStream{Type: minidump.BreakpadLinuxLSBReleaseStream, Data: lsb})
	} else if !errors.Is(err, os.ErrNotExist) {
		logf("%v", err)
	}
	m.info = systemInfo(cpuinfo)
	return m
}

// systemInfo describes this machine as Breakpad's Linux writer does: the
// kernel release in the version numbers and the uname line in
// CSDVersion; the CPU from cpuinfo, the contents of /proc/cpuinfo (nil
// if it could not be read).
func systemInfo(cpuinfo []byte) minidump.WriteSystemInfo {
	si := minidump.WriteSystemInfo{PlatformID: minidump.MD_OS_LINUX, NumberOfProcessors: uint8(min(runtime.NumCPU(), 255))}
	sysname, release, version, machine := uname()
	si.CSDVersion = strings.Join(nonEmpty(sysname, release, version, machine), " ")
	nums := strings.FieldsFunc(release, func(r rune) bool { return r < '0' || r > '9' })
	for i, p := range []*uint32{&si.MajorVersion, &si.MinorVersion, &si.BuildNumber} {
		if i < len(nums) {
			n, _ := strconv.ParseUint(nums[i], 10, 32)
			*p = uint32(n)
		}
	}
	if cpuinfo == nil {
		return si
	}
	cpu := parseCPUInfo(cpuinfo)
	copy(si.VendorID[:], cpu.vendor)
	si.VersionInformation = cpu.signature()
	si.FeatureInformation = cpu.features
	return si
}

func nonEmpty(s ...string) []string {
	var out []string
	for _, x := range s {
		if x != "" {
			out = append(out, x)
		}
	}
	return out
}

// cpuInfo is the first processor of /proc/cpuinfo.
type cpuInfo struct {
	vendor                  string
	family, model, stepping uint32
	features                uint32 // CPUID.1:EDX, from the flags
}

// signature returns CPUID leaf 1's EAX for the family, model and
// stepping (Intel SDM vol. 2A, figure 3-6): base and extended fields.
func (c cpuInfo) signature() uint32 {
	fam, extFam := c.family, uint32(0)
	if fam > 0xf {
		fam, extFam = 0xf, c.family-0xf
	}
	return c.stepping&0xf | (c.model&0xf)<<4 | fam<<8 | (c.model>>4&0xf)<<16 | (extFam&0xff)<<20
}

// parseCPUInfo reads the fields of the first processor of a
// /proc/cpuinfo listing.
func parseCPUInfo(b []byte) cpuInfo {
	var c cpuInfo
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break // the first processor only
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		n, _ := strconv.ParseUint(v, 10, 32)
		switch k {
		case "vendor_id":
			c.vendor = v
		case "cpu family":
			c.family = uint32(n)
		case "model":
			c.model = uint32(n)
		case "stepping":
			c.stepping = uint32(n)
		case "flags":
			for _, f := range strings.Fields(v) {
				for bit, name := range cpuidEDX1 {
					if name != "" && name == f {
						c.features |= 1 << bit
					}
				}
			}
		}
	}
	return c
}
