//go:build !linux

package builder

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

const oPath = 0

var errContextNeedsLinux = errors.New("reading the build context needs Linux")

func (c *contextFS) at(p string, flags int) (int, error) { return -1, errContextNeedsLinux }

func fstatInfo(fd int, name string) (fs.FileInfo, error) { return nil, errContextNeedsLinux }

func readlinkFD(fd int) (string, error) { return "", errContextNeedsLinux }

func (c *contextFS) xattrs(e entry) ([]xattr, error) { return nil, nil }

func (m mergedFS) xattrs(e entry) ([]xattr, error) { return nil, nil }

// ReadContextFile reads a file of the context directory.
func ReadContextFile(dir, name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) }
