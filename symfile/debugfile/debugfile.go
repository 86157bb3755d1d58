package debugfile

import (
	"encoding/hex"
	"hash/crc32"
	"io"
	"path/filepath"
	"strings"
)

// DefaultDir is the system's global debug directory (GDB's
// debug-file-directory on Debian and Fedora).
const DefaultDir = "/usr/lib/debug"

// Candidates returns where a separate debug file of the image at path
// image may be, in GDB's order.
//
// byID holds, for an image with a build ID of at least two bytes, the
// path .build-id/xx/rest.debug under each of debugDirs (global debug
// directories such as [DefaultDir]) and then under each of searchDirs.
//
// byLink holds, for a debuglink name (the file name in .gnu_debuglink, which
// must not contain '/' or NUL), the name next to the image, in the image's
// .debug directory, under each debug directory's copy of the image's
// absolute directory, and then in each of searchDirs. The candidates next
// to the image need image; without it only the search directories are
// listed.
//
// Candidates does not look at the file system except to make the image's
// directory absolute. A file found through byLink should be checked with
// [CRCMatches]; one found through byID, by comparing build IDs.
func Candidates(image string, buildID []byte, debugLink string, debugDirs, searchDirs []string) (byID, byLink []string) {
	if len(buildID) >= 2 {
		h := hex.EncodeToString(buildID)
		for _, dirs := range [][]string{debugDirs, searchDirs} {
			for _, r := range dirs {
				byID = append(byID, filepath.Join(r, ".build-id", h[:2], h[2:]+".debug"))
			}
		}
	}
	if debugLink != "" && !strings.ContainsAny(debugLink, "/\x00") {
		if image != "" {
			dir := filepath.Dir(image)
			byLink = append(byLink, filepath.Join(dir, debugLink), filepath.Join(dir, ".debug", debugLink))
			if abs, err := filepath.Abs(dir); err == nil {
				for _, r := range debugDirs {
					byLink = append(byLink, filepath.Join(r, abs, debugLink))
				}
			}
		}
		for _, d := range searchDirs {
			byLink = append(byLink, filepath.Join(d, debugLink))
		}
	}
	return byID, byLink
}

// CRCMatches reports whether the CRC-32 of the first size bytes of r (the
// IEEE polynomial, as .gnu_debuglink uses) is crc. A read error reports
// false.
func CRCMatches(r io.ReaderAt, size int64, crc uint32) bool {
	h := crc32.NewIEEE()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, size)); err != nil {
		return false
	}
	return h.Sum32() == crc
}
