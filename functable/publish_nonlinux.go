//go:build !linux

package functable

import "fmt"

// PublishNativeCallback records the native callback and context of
// callback table t in the published list. Only Linux registries publish a
// list; elsewhere it checks t and does nothing.
func (t *Table) PublishNativeCallback(callback, context uint64) error {
	if t.reg == nil || t.deleted.Load() {
		return ErrNotRegistered
	}
	if t.typ != RF_CALLBACK {
		return fmt.Errorf("%w: not a callback table", ErrBadTable)
	}
	return nil
}
