package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/strata-build/strata/internal/rootless"
	"github.com/strata-build/strata/registry"
	"github.com/strata-build/strata/store"
)

// defaultRoot is the store strata uses without --root (rootless.StoreRoot): a user
// without root has it in its home, also in the user namespace strata runs in.
func defaultRoot() (string, error) {
	root, err := rootless.StoreRoot(os.Geteuid() == 0 && rootless.Current() == rootless.NotInNamespace)
	if err != nil {
		return "", fmt.Errorf("finding the store: %w: pass --root", err)
	}
	return root, nil
}

func openStore(root string) (*store.Store, error) {
	if root == "" {
		var err error
		if root, err = defaultRoot(); err != nil {
			return nil, err
		}
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
