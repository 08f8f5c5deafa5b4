package dockerfile

import (
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// sharedSlice is a list that hands out read-only snapshots of itself
// without copying. A snapshot is the list's prefix, capped so that an
// append to it cannot write into the shared array; appending to the list
// writes past every snapshot's end and so never changes one. Only an
// in-place replacement would, so the first one after a snapshot copies
// the list (copy on write).
//
// Why: every Step carries the environment and args it sees. Cloning them
// per step made memory grow with the square of the instruction count
// (5,000 ENV lines took a GiB); steps that only add keys now share one
// array.
type sharedSlice[T any] struct {
	items  []T
	shared bool // a snapshot sees items' array
}

// snapshot is the list as it is now; the caller must not change it.
func (s *sharedSlice[T]) snapshot() []T {
	s.shared = true
	return s.items[:len(s.items):len(s.items)]
}

func (s *sharedSlice[T]) add(v T) {
	s.items = append(s.items, v)
}

func (s *sharedSlice[T]) replace(i int, v T) {
	if s.shared {
		s.items, s.shared = slices.Clone(s.items), false
	}
	s.items[i] = v
}

// envList is an expansion's running environment, "K=V" in order. It is
// also the shell.EnvGetter its words expand with, so no expansion builds
// a map of the whole environment per word.
type envList struct {
	kvs sharedSlice[string]
	// first is the index of each key's first entry, the one set replaces.
	first map[string]int
	// last is the index of each normalized key's last entry, the one Get
	// reads: a base image's config may repeat a key, and
	// shell.EnvsFromSlice, which this replaces, lets the last one win.
	last map[string]int
}

var _ shell.EnvGetter = (*envList)(nil)

// newEnvList starts from a copy of env: the caller keeps its slice. A nil
// env stays nil until set, as the cache key encodes nil and empty apart.
func newEnvList(env []string) *envList {
	e := &envList{first: map[string]int{}, last: map[string]int{}}
	e.kvs.items = slices.Clone(env)
	for i, kv := range env {
		e.index(i, kv)
	}
	return e
}

func (e *envList) index(i int, kv string) {
	k, _, _ := strings.Cut(kv, "=")
	if _, ok := e.first[k]; !ok {
		e.first[k] = i
	}
	e.last[shell.NormalizeEnvKey(k)] = i
}

// set replaces key's first entry in place or appends one, keeping the
// order, as Docker does.
func (e *envList) set(key, value string) {
	kv := key + "=" + value
	if i, ok := e.first[key]; ok {
		e.kvs.replace(i, kv)
		return
	}
	e.index(len(e.kvs.items), kv)
	e.kvs.add(kv)
}

// snapshot is the environment as it is now, sharing its array with the
// other snapshots; the caller must not change it.
func (e *envList) snapshot() []string { return e.kvs.snapshot() }

// Get is shell.EnvGetter's: the value of key's last entry.
func (e *envList) Get(key string) (string, bool) {
	i, ok := e.last[shell.NormalizeEnvKey(key)]
	if !ok {
		return "", false
	}
	_, v, _ := strings.Cut(e.kvs.items[i], "=")
	return v, true
}

// Keys is shell.EnvGetter's: every entry's key, in order. The lexer never
// calls it, so it is built on demand.
func (e *envList) Keys() []string {
	keys := make([]string, 0, len(e.kvs.items))
	for _, kv := range e.kvs.items {
		k, _, _ := strings.Cut(kv, "=")
		keys = append(keys, k)
	}
	return keys
}

// argSet is an expansion's build args in scope, in the order of first
// declaration; setting an existing key replaces it in place. Its
// snapshots share an array as envList's do.
type argSet struct {
	args  sharedSlice[Arg]
	index map[string]int
}

// newArgSet starts from a copy of args: the caller keeps its slice. A nil
// args stays nil until set, as the cache key encodes nil and empty apart.
func newArgSet(args []Arg) *argSet {
	s := &argSet{index: map[string]int{}}
	s.args.items = slices.Clone(args)
	for i, a := range args {
		if _, ok := s.index[a.Key]; !ok {
			s.index[a.Key] = i
		}
	}
	return s
}

func (s *argSet) set(a Arg) {
	if i, ok := s.index[a.Key]; ok {
		s.args.replace(i, a)
		return
	}
	s.index[a.Key] = len(s.args.items)
	s.args.add(a)
}

// snapshot is the args as they are now; the caller must not change them.
func (s *argSet) snapshot() []Arg { return s.args.snapshot() }
