package main

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/strata-build/strata/internal/rootless"
	"github.com/strata-build/strata/registry"
	"github.com/strata-build/strata/store"
)

// defaultRoot is the store strata uses without --root: /var/lib/strata
// for root, else (also in the user namespace of a user without root) $XDG_DATA_HOME/strata (~/.local/share/strata).
func defaultRoot() string {
	if os.Geteuid() == 0 && rootless.Current() == rootless.NotInNamespace {
		return "/var/lib/strata"
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "strata")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "share", "strata")
}

func openStore(root string) (*store.Store, error) {
	if root == "" {
		root = defaultRoot()
	}
	return store.Open(root)
}

func registryConfig(insecure []string) registry.Config {
	return registry.Config{Keychain: authn.DefaultKeychain, Insecure: insecure}
}

// oneLine keeps an error on one line: a registry's or a tool's message may
// span several.
func oneLine(err error) error {
	if err == nil || !strings.Contains(err.Error(), "\n") {
		return err
	}
	return &flatError{err}
}

type flatError struct{ err error }

func (e *flatError) Error() string {
	return strings.Join(strings.Fields(strings.ReplaceAll(e.err.Error(), "\n", "; ")), " ")
}

func (e *flatError) Unwrap() error { return e.err }

// writeFileReplacing writes a small output file (--iidfile, --metadata-file)
// through a new temporary file renamed over dest: strata often runs as root
// and the destination may be in a directory others can write (/tmp), where
// writing through dest would follow a symlink planted there.
func writeFileReplacing(dest string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dest)
}
