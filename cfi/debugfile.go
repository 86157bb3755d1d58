package cfi

import (
	"bytes"
	"os"

	"github.com/fntable/fntable/symfile/debugfile"
)

// FindDebugFile returns the path of the separate debug file of the ELF
// image at imagePath, whose File is f: by f's build ID under each of
// debugDirs (nil means [debugfile.DefaultDir]), then by its .gnu_debuglink
// name next to the image, in its .debug directory and under each debug
// directory (see [debugfile.Candidates]). A file found by build ID must
// carry the same build ID; one found by name must match the debuglink's
// CRC-32. Pass what it returns to [File.AddDebugFrame] (through os.Open).
func FindDebugFile(imagePath string, f *File, debugDirs []string) (path string, ok bool) {
	if debugDirs == nil {
		debugDirs = []string{debugfile.DefaultDir}
	}
	link, crc := f.DebugLink()
	byID, byLink := debugfile.Candidates(imagePath, f.BuildID(), link, debugDirs, nil)
	for _, p := range byID {
		if d, err := Open(p); err == nil {
			same := bytes.Equal(d.BuildID(), f.BuildID())
			d.Close()
			if same {
				return p, true
			}
		}
	}
	for _, p := range byLink {
		fh, err := os.Open(p)
		if err != nil {
			continue
		}
		fi, err := fh.Stat()
		match := err == nil && fi.Mode().IsRegular() && debugfile.CRCMatches(fh, fi.Size(), crc)
		fh.Close()
		if match {
			return p, true
		}
	}
	return "", false
}
