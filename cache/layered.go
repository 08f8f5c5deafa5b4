package cache

import "context"

// Layered looks a key up in the local store first, then in each imported
// cache in the order given (--cache-from order); it keeps new entries in
// the local store only (an export writes them out).
type Layered struct {
	Local   *Local
	Imports []*Imported
}

// Get is the first entry found for key.
func (c *Layered) Get(ctx context.Context, key string) (*Entry, error) {
	if e, err := c.Local.Get(ctx, key); e != nil || err != nil {
		return e, err
	}
	for _, imp := range c.Imports {
		// Not copied into the local store: an imported entry is checked
		// only when its layer's bytes are read, and a damaged one must not
		// outlive the import.
		if e, _ := imp.Get(ctx, key); e != nil {
			return e, nil
		}
	}
	return nil, nil
}

// Put keeps e in the local store.
func (c *Layered) Put(ctx context.Context, key string, e *Entry) error {
	return c.Local.Put(ctx, key, e)
}

// Flush waits until the local store holds every entry Put.
func (c *Layered) Flush() error { return c.Local.Flush() }

// Similar gathers the local and imported records like e.
func (c *Layered) Similar(ctx context.Context, e *Explain) ([]*Explain, error) {
	out, err := c.Local.Similar(ctx, e)
	if err != nil {
		return nil, err
	}
	for _, imp := range c.Imports {
		xs, _ := imp.Similar(ctx, e)
		out = append(out, xs...)
	}
	return out, nil
}
