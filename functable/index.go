package functable

// The index is the ordered snapshot of a registry's tables that
// Registry.Tables enumerates (lookups use the directory). It is a
// persistent B+-tree: an update
// copies the nodes on one root-to-leaf path and never modifies a published
// node, so lookups read a snapshot with no lock and no atomic writes
// (read-copy-update; the garbage collector reclaims old nodes once no
// lookup uses them). Ranges never overlap, so a range is found by its
// start. Removal does not rebalance: nodes may become sparse, which costs
// a little space and never correctness.

// span is the address range [min, max) of one table.
type span struct {
	min, max uint64
	t        *Table
}

// nodeMax is the fanout of inner nodes and the capacity of leaves.
const nodeMax = 32

// leaf holds up to nodeMax spans sorted by min; mins repeats their starts
// for a compact search.
type leaf struct {
	n     int
	mins  [nodeMax]uint64
	spans [nodeMax]span
}

// inner holds up to nodeMax children, inners (height > 1) or leaves
// (height 1), with the smallest min of each child's subtree.
type inner struct {
	n      int
	keys   [nodeMax]uint64
	inners [nodeMax]*inner
	leaves [nodeMax]*leaf
}

// index is one immutable snapshot.
type index struct {
	root   *inner // the root when height >= 1
	lroot  *leaf  // the root when height == 0
	height int
	tables int // number of spans
}

var emptyIndex = &index{}

// upper returns the number of keys <= x.
func upper(keys []uint64, x uint64) int {
	lo, n := 0, len(keys)
	for n > 0 {
		half := n >> 1
		if keys[lo+half] <= x {
			lo += half + 1
			n -= half + 1
		} else {
			n = half
		}
	}
	return lo
}

// find returns the span containing pc.
func (ix *index) find(pc uint64) (*span, bool) {
	s := ix.last(pc)
	if s == nil || pc >= s.max {
		return nil, false
	}
	return s, true
}

// last returns the last span with min <= x.
func (ix *index) last(x uint64) *span {
	var l *leaf
	if ix.height == 0 {
		l = ix.lroot
		if l == nil {
			return nil
		}
	} else {
		n := ix.root
		for h := ix.height; ; h-- {
			i := upper(n.keys[:n.n], x) - 1
			if i < 0 {
				return nil
			}
			if h == 1 {
				l = n.leaves[i]
				break
			}
			n = n.inners[i]
		}
	}
	i := upper(l.mins[:l.n], x) - 1
	if i < 0 {
		return nil
	}
	return &l.spans[i]
}

func (ix *index) insert(s span) *index {
	out := &index{height: ix.height, tables: ix.tables + 1}
	if ix.height == 0 {
		var l leaf
		if ix.lroot != nil {
			l = *ix.lroot
		}
		a, b := leafInsert(&l, s)
		if b == nil {
			out.lroot = a
			return out
		}
		r := &inner{n: 2}
		r.keys[0], r.leaves[0] = a.mins[0], a
		r.keys[1], r.leaves[1] = b.mins[0], b
		out.root, out.height = r, 1
		return out
	}
	a, b := innerInsert(ix.root, ix.height, s)
	if b == nil {
		out.root = a
		return out
	}
	r := &inner{n: 2}
	r.keys[0], r.inners[0] = a.keys[0], a
	r.keys[1], r.inners[1] = b.keys[0], b
	out.root, out.height = r, ix.height+1
	return out
}

// leafInsert inserts s into the copy l, splitting it if full.
func leafInsert(l *leaf, s span) (*leaf, *leaf) {
	j := upper(l.mins[:l.n], s.min)
	if l.n < nodeMax {
		copy(l.mins[j+1:l.n+1], l.mins[j:l.n])
		copy(l.spans[j+1:l.n+1], l.spans[j:l.n])
		l.mins[j], l.spans[j] = s.min, s
		l.n++
		return l, nil
	}
	var mins [nodeMax + 1]uint64
	var spans [nodeMax + 1]span
	copy(mins[:j], l.mins[:j])
	copy(spans[:j], l.spans[:j])
	mins[j], spans[j] = s.min, s
	copy(mins[j+1:], l.mins[j:])
	copy(spans[j+1:], l.spans[j:])
	h := (nodeMax + 1) / 2
	a, b := &leaf{n: h}, &leaf{n: nodeMax + 1 - h}
	copy(a.mins[:], mins[:h])
	copy(a.spans[:], spans[:h])
	copy(b.mins[:], mins[h:])
	copy(b.spans[:], spans[h:])
	return a, b
}

func innerInsert(n *inner, h int, s span) (*inner, *inner) {
	i := max(upper(n.keys[:n.n], s.min)-1, 0)
	c := *n // the copy
	var newKey uint64
	var split bool
	var sk uint64
	var si *inner
	var sl *leaf
	if h == 1 {
		l := *n.leaves[i]
		a, b := leafInsert(&l, s)
		c.leaves[i], newKey = a, a.mins[0]
		if b != nil {
			split, sk, sl = true, b.mins[0], b
		}
	} else {
		a, b := innerInsert(n.inners[i], h-1, s)
		c.inners[i], newKey = a, a.keys[0]
		if b != nil {
			split, sk, si = true, b.keys[0], b
		}
	}
	c.keys[i] = newKey
	if !split {
		return &c, nil
	}
	j := i + 1
	if c.n < nodeMax {
		copy(c.keys[j+1:c.n+1], c.keys[j:c.n])
		copy(c.inners[j+1:c.n+1], c.inners[j:c.n])
		copy(c.leaves[j+1:c.n+1], c.leaves[j:c.n])
		c.keys[j], c.inners[j], c.leaves[j] = sk, si, sl
		c.n++
		return &c, nil
	}
	var keys [nodeMax + 1]uint64
	var inners [nodeMax + 1]*inner
	var leaves [nodeMax + 1]*leaf
	copy(keys[:j], c.keys[:j])
	copy(inners[:j], c.inners[:j])
	copy(leaves[:j], c.leaves[:j])
	keys[j], inners[j], leaves[j] = sk, si, sl
	copy(keys[j+1:], c.keys[j:])
	copy(inners[j+1:], c.inners[j:])
	copy(leaves[j+1:], c.leaves[j:])
	hh := (nodeMax + 1) / 2
	a, b := &inner{n: hh}, &inner{n: nodeMax + 1 - hh}
	copy(a.keys[:], keys[:hh])
	copy(a.inners[:], inners[:hh])
	copy(a.leaves[:], leaves[:hh])
	copy(b.keys[:], keys[hh:])
	copy(b.inners[:], inners[hh:])
	copy(b.leaves[:], leaves[hh:])
	return a, b
}

// remove returns a snapshot without t's span starting at min.
func (ix *index) remove(min uint64, t *Table) *index {
	if ix.height == 0 {
		if ix.lroot == nil {
			return ix
		}
		l, ok := leafRemove(ix.lroot, min, t)
		if !ok {
			return ix
		}
		if l.n == 0 {
			l = nil
		}
		return &index{lroot: l, tables: ix.tables - 1}
	}
	r, ok := innerRemove(ix.root, ix.height, min, t)
	if !ok {
		return ix
	}
	out := &index{root: r, height: ix.height, tables: ix.tables - 1}
	// Collapse a root with one child.
	for out.height > 0 && out.root != nil && out.root.n == 1 {
		if out.height == 1 {
			out.lroot, out.root, out.height = out.root.leaves[0], nil, 0
		} else {
			out.root = out.root.inners[0]
			out.height--
		}
	}
	if out.height > 0 && (out.root == nil || out.root.n == 0) {
		return emptyIndex
	}
	return out
}

func leafRemove(l *leaf, min uint64, t *Table) (*leaf, bool) {
	j := upper(l.mins[:l.n], min) - 1
	for ; j >= 0 && l.mins[j] == min; j-- {
		if l.spans[j].t == t {
			c := &leaf{n: l.n - 1}
			copy(c.mins[:j], l.mins[:j])
			copy(c.spans[:j], l.spans[:j])
			copy(c.mins[j:], l.mins[j+1:l.n])
			copy(c.spans[j:], l.spans[j+1:l.n])
			return c, true
		}
	}
	return nil, false
}

func innerRemove(n *inner, h int, min uint64, t *Table) (*inner, bool) {
	i := upper(n.keys[:n.n], min) - 1
	if i < 0 {
		return nil, false
	}
	c := *n
	empty := false
	if h == 1 {
		l, ok := leafRemove(n.leaves[i], min, t)
		if !ok {
			return nil, false
		}
		if l.n == 0 {
			empty = true
		} else {
			c.leaves[i], c.keys[i] = l, l.mins[0]
		}
	} else {
		m, ok := innerRemove(n.inners[i], h-1, min, t)
		if !ok {
			return nil, false
		}
		if m.n == 0 {
			empty = true
		} else {
			c.inners[i], c.keys[i] = m, m.keys[0]
		}
	}
	if empty {
		copy(c.keys[i:c.n-1], c.keys[i+1:c.n])
		copy(c.inners[i:c.n-1], c.inners[i+1:c.n])
		copy(c.leaves[i:c.n-1], c.leaves[i+1:c.n])
		c.n--
		c.keys[c.n], c.inners[c.n], c.leaves[c.n] = 0, nil, nil
	}
	return &c, true
}

// each calls yield for every span in order until it returns false.
func (ix *index) each(yield func(*span) bool) bool {
	if ix.height == 0 {
		if ix.lroot == nil {
			return true
		}
		for i := range ix.lroot.n {
			if !yield(&ix.lroot.spans[i]) {
				return false
			}
		}
		return true
	}
	return eachInner(ix.root, ix.height, yield)
}

func eachInner(n *inner, h int, yield func(*span) bool) bool {
	for i := range n.n {
		if h == 1 {
			l := n.leaves[i]
			for j := range l.n {
				if !yield(&l.spans[j]) {
					return false
				}
			}
		} else if !eachInner(n.inners[i], h-1, yield) {
			return false
		}
	}
	return true
}

// buildIndex returns the index of spans, which are sorted by min and do
// not overlap, with full nodes.
func buildIndex(spans []span) *index {
	if len(spans) == 0 {
		return emptyIndex
	}
	var leaves []*leaf
	for len(spans) > 0 {
		l := &leaf{n: min(len(spans), nodeMax)}
		for i := range l.n {
			l.mins[i], l.spans[i] = spans[i].min, spans[i]
		}
		leaves = append(leaves, l)
		spans = spans[l.n:]
	}
	out := &index{}
	for _, l := range leaves {
		out.tables += l.n
	}
	if len(leaves) == 1 {
		out.lroot = leaves[0]
		return out
	}
	var level []*inner
	for i := 0; i < len(leaves); i += nodeMax {
		n := &inner{n: min(len(leaves)-i, nodeMax)}
		for j := range n.n {
			n.keys[j], n.leaves[j] = leaves[i+j].mins[0], leaves[i+j]
		}
		level = append(level, n)
	}
	out.height = 1
	for len(level) > 1 {
		var up []*inner
		for i := 0; i < len(level); i += nodeMax {
			n := &inner{n: min(len(level)-i, nodeMax)}
			for j := range n.n {
				n.keys[j], n.inners[j] = level[i+j].keys[0], level[i+j]
			}
			up = append(up, n)
		}
		level = up
		out.height++
	}
	out.root = level[0]
	return out
}
