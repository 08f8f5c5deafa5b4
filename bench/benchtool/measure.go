package main

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// record is one measured build, a line of the results file.
type record struct {
	Workload string  `json:"workload"`
	Builder  string  `json:"builder"`
	Phase    string  `json:"phase"` // cold, warm or change
	Run      int     `json:"run"`
	OK       bool    `json:"ok"`
	Error    string  `json:"error,omitempty"`
	Seconds  float64 `json:"seconds"`
	PeakRSS  int64   `json:"peak_rss"` // bytes: peak of the summed RSS of the measured trees, at least the largest process's high-water mark
	BaseRSS  int64   `json:"base_rss"` // bytes: the -also-pid trees' RSS before the command
	Digest   string  `json:"digest,omitempty"`
	Size     int64   `json:"size,omitempty"` // bytes of the output tarball
}

// measureOptions are the measure subcommand's flags.
type measureOptions struct {
	out     string
	image   string
	alsoPID int
	rec     record
}

// measureCmd runs a command, samples its process tree's RSS, and appends a record.
func measureCmd(args []string) error {
	var o measureOptions
	fs := flag.NewFlagSet("measure", flag.ExitOnError)
	fs.StringVar(&o.out, "record", "", "append the JSON record to this file")
	fs.StringVar(&o.image, "image", "", "output to read the digest from: oci:PATH or docker:PATH")
	fs.IntVar(&o.alsoPID, "also-pid", 0, "also count this process tree (a daemon) in the RSS")
	fs.StringVar(&o.rec.Workload, "workload", "", "workload label")
	fs.StringVar(&o.rec.Builder, "builder", "", "builder label")
	fs.StringVar(&o.rec.Phase, "phase", "", "phase label")
	fs.IntVar(&o.rec.Run, "run", 0, "run number")
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 || o.out == "" {
		return fmt.Errorf("measure: want -record FILE and a command")
	}
	rec := o.rec
	runErr := runSampled(&rec, fs.Args(), o.alsoPID)
	// A build shorter than the sampling period has no sample, and one process can peak
	// between two: the kernel's high-water mark of the largest process is a floor.
	rec.PeakRSS = max(rec.PeakRSS, childrenMaxRSS())
	if runErr == nil && o.image != "" {
		runErr = readImage(&rec, o.image)
	}
	rec.OK = runErr == nil
	if runErr != nil {
		rec.Error = runErr.Error()
	}
	if err := appendRecord(o.out, rec); err != nil {
		return err
	}
	return runErr
}

func appendRecord(path string, rec record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

// readImage fills in the output's size and digest: the manifest digest of an OCI archive, or
// the image ID (config digest) of a docker save archive, which has no manifest digest.
func readImage(rec *record, spec string) error {
	kind, path, ok := strings.Cut(spec, ":")
	if !ok {
		return fmt.Errorf("-image %q: want oci:PATH or docker:PATH", spec)
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("output: %w", err)
	}
	rec.Size = st.Size()
	name := map[string]string{"oci": "index.json", "docker": "manifest.json"}[kind]
	b, err := readTarFile(path, name)
	if err != nil {
		return err
	}
	rec.Digest, err = digestFrom(kind, b)
	return err
}

func digestFrom(kind string, b []byte) (string, error) {
	if kind == "oci" {
		var idx struct {
			Manifests []struct{ Digest string } `json:"manifests"`
		}
		if err := json.Unmarshal(b, &idx); err != nil || len(idx.Manifests) == 0 {
			return "", fmt.Errorf("reading index.json: no manifest (%v)", err)
		}
		return idx.Manifests[0].Digest, nil
	}
	var m []struct{ Config string }
	if err := json.Unmarshal(b, &m); err != nil || len(m) == 0 {
		return "", fmt.Errorf("reading manifest.json: no image (%v)", err)
	}
	hex := strings.TrimSuffix(strings.TrimPrefix(m[0].Config, "blobs/sha256/"), ".json")
	return "sha256:" + hex, nil
}

// readTarFile returns the content of the named top-level file of a tar archive.
func readTarFile(path, name string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening output: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: no %s", path, name)
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			return io.ReadAll(tr)
		}
	}
}
