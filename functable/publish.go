package functable

// publisher keeps the shared-memory copy of the table list. The registry
// calls it with its writer lock held, after validating each change and
// before making it visible to in-process lookups.
type publisher interface {
	add(t *Table) error
	grow(t *Table) error
	remove(t *Table) error
	close() error
}
