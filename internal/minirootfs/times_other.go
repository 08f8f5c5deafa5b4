//go:build !unix

package minirootfs

import (
	"errors"
	"time"
)

func lchtimes(string, time.Time) error {
	return errors.New("setting a symlink's mtime needs a Unix system")
}
