// Command goprog is a small Go program for the symbol readers' tests: it is
// built with DWARF and again with -ldflags=-s -w, so that both the DWARF
// path and the pclntab path of the ELF reader are exercised.
package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

type point struct{ x, y int }

func (p point) norm() int { return p.x*p.x + p.y*p.y }

func collect(n int) []point {
	ps := make([]point, 0, n)
	for i := range n {
		ps = append(ps, point{i, n - i})
	}
	return ps
}

func main() {
	ps := collect(len(os.Args) + 10)
	sort.Slice(ps, func(i, j int) bool { return ps[i].norm() < ps[j].norm() })
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%d,%d ", p.x, p.y)
	}
	fmt.Println(b.String())
}
