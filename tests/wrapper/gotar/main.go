// gotar writes tar archives with Go's archive/tar, the writer Tilt and kubectl use, to stdout.
//
//	gotar tilt SRC DEST      SRC walked as Tilt's ArchiveBuilder does for a sync SRC -> DEST
//	                         (internal/build/tar.go: entriesForPath + writeEntry)
//	gotar kubectl SRC DEST   SRC as `kubectl cp SRC pod:.../DEST` sends it (pkg/cmd/cp: makeTar);
//	                         the pod runs `tar -xmf - -C <dir of DEST>`
//	gotar headers            a JSON list of headers on stdin, written as given (for the formats
//	                         and fields a walk never produces: PAX nanoseconds, GNU base-256, ...)
//
// Only the standard library: the tests build it with `go build` and no module download.
package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: gotar tilt SRC DEST | kubectl SRC DEST | headers"))
	}
	tw := tar.NewWriter(os.Stdout)
	var err error
	switch {
	case os.Args[1] == "tilt" && len(os.Args) == 4:
		err = tilt(tw, os.Args[2], os.Args[3])
	case os.Args[1] == "kubectl" && len(os.Args) == 4:
		err = kubectlTar(tw, filepath.Dir(filepath.Clean(os.Args[2])), filepath.Base(filepath.Clean(os.Args[2])),
			path.Clean(os.Args[3]))
	case os.Args[1] == "headers" && len(os.Args) == 2:
		err = headers(tw, os.Stdin)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1:])
	}
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gotar:", err)
	os.Exit(1)
}

// --- Tilt -------------------------------------------------------------------------------------

type entry struct {
	path   string
	header *tar.Header
}

func tilt(tw *tar.Writer, localPath, containerPath string) error {
	localInfo, err := os.Stat(localPath)
	if err != nil {
		return err
	}
	localPathIsDir := localInfo.IsDir()
	if localPathIsDir && !strings.HasSuffix(localPath, string(filepath.Separator)) {
		localPath += string(filepath.Separator)
	}
	containerPath = strings.TrimPrefix(containerPath, "/")
	var entries []entry
	err = filepath.Walk(localPath, func(cur string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		linkname := ""
		if info.Mode()&os.ModeSymlink != 0 {
			if linkname, err = os.Readlink(cur); err != nil {
				return err
			}
		}
		header, err := tar.FileInfoHeader(info, linkname)
		if err != nil {
			return nil // Tilt skips what a tarball cannot hold (sockets)
		}
		header.Uid, header.Gid = 0, 0 // clearUIDAndGID
		if localPathIsDir {
			rel, err := filepath.Rel(localPath, cur)
			if err != nil {
				return err
			}
			header.Name = path.Join(containerPath, filepath.ToSlash(rel))
		} else if strings.HasSuffix(containerPath, "/") {
			header.Name = containerPath + filepath.Base(cur)
		} else {
			header.Name = containerPath
		}
		header.Name = path.Clean(header.Name)
		entries = append(entries, entry{cur, header})
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.header.Typeflag != tar.TypeReg {
			if err := tw.WriteHeader(e.header); err != nil {
				return err
			}
			continue
		}
		data, err := os.ReadFile(e.path)
		if err != nil {
			return err
		}
		e.header.Size = int64(len(data))
		if err := tw.WriteHeader(e.header); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// --- kubectl cp (recursiveTar, with the glob of a plain path being the path itself) ------------

func kubectlTar(tw *tar.Writer, srcDir, srcFile, destFile string) error {
	fpath := filepath.Join(srcDir, srcFile)
	stat, err := os.Lstat(fpath)
	if err != nil {
		return err
	}
	if stat.IsDir() {
		files, err := os.ReadDir(fpath)
		if err != nil {
			return err
		}
		if len(files) == 0 {
			hdr, _ := tar.FileInfoHeader(stat, fpath)
			hdr.Name = destFile
			return tw.WriteHeader(hdr)
		}
		for _, f := range files {
			if err := kubectlTar(tw, srcDir, filepath.Join(srcFile, f.Name()), path.Join(destFile, f.Name())); err != nil {
				return err
			}
		}
		return nil
	}
	if stat.Mode()&os.ModeSymlink != 0 {
		hdr, _ := tar.FileInfoHeader(stat, fpath)
		target, err := os.Readlink(fpath)
		if err != nil {
			return err
		}
		hdr.Linkname = target
		hdr.Name = destFile
		return tw.WriteHeader(hdr)
	}
	hdr, err := tar.FileInfoHeader(stat, fpath)
	if err != nil {
		return err
	}
	hdr.Name = destFile
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !stat.Mode().IsRegular() {
		return nil // kubectl would open a fifo here and wait for a writer forever
	}
	f, err := os.Open(fpath)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}

// --- explicit headers ------------------------------------------------------------------------

type spec struct {
	Name     string            `json:"name"`
	Type     string            `json:"type"` // file, dir, symlink, hardlink, fifo
	Linkname string            `json:"linkname"`
	Mode     int64             `json:"mode"`
	Uid      int               `json:"uid"`
	Gid      int               `json:"gid"`
	MtimeNs  int64             `json:"mtime_ns"`
	Content  []byte            `json:"content"` // base64 in JSON
	Format   string            `json:"format"`  // "", ustar, pax, gnu
	PAX      map[string]string `json:"pax"`
}

func headers(tw *tar.Writer, r io.Reader) error {
	var specs []spec
	if err := json.NewDecoder(r).Decode(&specs); err != nil {
		return err
	}
	types := map[string]byte{"file": tar.TypeReg, "dir": tar.TypeDir, "symlink": tar.TypeSymlink,
		"hardlink": tar.TypeLink, "fifo": tar.TypeFifo}
	formats := map[string]tar.Format{"": tar.FormatUnknown, "ustar": tar.FormatUSTAR, "pax": tar.FormatPAX,
		"gnu": tar.FormatGNU}
	for _, s := range specs {
		typ, ok := types[s.Type]
		if !ok {
			return fmt.Errorf("unknown type %q", s.Type)
		}
		h := &tar.Header{Name: s.Name, Typeflag: typ, Linkname: s.Linkname, Mode: s.Mode, Uid: s.Uid,
			Gid: s.Gid, ModTime: time.Unix(0, s.MtimeNs), Format: formats[s.Format], PAXRecords: s.PAX}
		if typ == tar.TypeReg {
			h.Size = int64(len(s.Content))
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		if _, err := io.Copy(tw, bytes.NewReader(s.Content)); err != nil {
			return err
		}
	}
	return nil
}
