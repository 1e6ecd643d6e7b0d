package lab

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// ModulePath is the Go module fibercut is built from; [NodeBinary] looks for
// its source to rebuild a static binary.
const ModulePath = "github.com/fibercut/fibercut"

// ImageRepo is the repository name of node images; the tag is a hash of the
// binary inside, so a changed binary makes a new image.
const ImageRepo = "fibercut-node"

// ErrDynamicBinary is returned by [NodeBinary] when the running binary is
// dynamically linked and no static one can be built here.
var ErrDynamicBinary = errors.New("fibercut binary is dynamically linked")

// IsStatic reports whether the ELF file at path is statically linked, that is
// has no program interpreter, so it can run in an empty (scratch) image.
func IsStatic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, fmt.Errorf("lab: inspect binary %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}

// NodeBinary returns the path of a static fibercut binary to put in the node
// image. It is the running executable when that is static. Otherwise, when the
// Go toolchain and fibercut's module source are found (searching upwards from
// the working directory), it builds one with CGO_ENABLED=0 into the user cache
// directory, once per running binary. Otherwise it returns an error wrapping
// [ErrDynamicBinary] that says what to run.
func NodeBinary(ctx context.Context) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("lab: find own executable: %w", err)
	}
	static, err := IsStatic(exe)
	if err != nil {
		return "", err
	}
	if static {
		return exe, nil
	}
	howto := "build a static one and use it:\n\n    CGO_ENABLED=0 go build -o fibercut ./cmd/fibercut && ./fibercut lab up"
	root, ok := findModuleRoot()
	gobin, gerr := exec.LookPath("go")
	if !ok || gerr != nil {
		return "", fmt.Errorf("%w (%s), so it cannot run in the node image, and there is no Go toolchain and fibercut source here to rebuild it; %s",
			ErrDynamicBinary, exe, howto)
	}
	sum, err := fileHash(exe)
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	out := filepath.Join(cache, "fibercut", "node-"+sum[:16])
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	slog.Info("running binary is dynamically linked; building a static one for the node image", "source", root, "out", out)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", fmt.Errorf("lab: %w", err)
	}
	tmp := out + ".tmp"
	cmd := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-o", tmp, "./cmd/fibercut")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w (%s) and rebuilding it statically in %s failed: %v\n%s\n%s",
			ErrDynamicBinary, exe, root, err, b, howto)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("lab: %w", err)
	}
	return out, nil
}

// findModuleRoot walks up from the working directory to a go.mod declaring
// [ModulePath].
func findModuleRoot() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if fields := strings.Fields(sc.Text()); len(fields) == 2 && fields[0] == "module" {
					f.Close()
					if fields[1] == ModulePath {
						return dir, true
					}
					return "", false
				}
			}
			f.Close()
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

func fileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("lab: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("lab: hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Image is a node image: its reference and its id.
type Image struct {
	Ref string
	ID  string
}

// EnsureImage makes sure the node image for the static binary at path exists
// and returns it. The image is imported from a tar holding only the binary
// and empty /data, /tmp and /etc directories: nothing is ever pulled.
func EnsureImage(ctx context.Context, cli client.APIClient, binary string) (Image, error) {
	static, err := IsStatic(binary)
	if err != nil {
		return Image{}, err
	}
	if !static {
		return Image{}, fmt.Errorf("%w: %s cannot run in a scratch image; build it with CGO_ENABLED=0", ErrDynamicBinary, binary)
	}
	sum, err := fileHash(binary)
	if err != nil {
		return Image{}, err
	}
	ref := ImageRepo + ":" + sum[:16]
	if img, err := cli.ImageInspect(ctx, ref); err == nil {
		return Image{Ref: ref, ID: img.ID}, nil
	} else if !cerrdefs.IsNotFound(err) {
		return Image{}, fmt.Errorf("lab: inspect image %s: %w", ref, err)
	}
	if err := importImage(ctx, cli, binary, ref); err != nil {
		return Image{}, err
	}
	img, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		return Image{}, fmt.Errorf("lab: inspect imported image %s: %w", ref, err)
	}
	return Image{Ref: ref, ID: img.ID}, nil
}

func importImage(ctx context.Context, cli client.APIClient, binary, ref string) error {
	layer, err := imageLayer(binary)
	if err != nil {
		return err
	}
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: layer, SourceName: "-"}, ref, image.ImportOptions{
		Message: "fibercut node image, imported from " + filepath.Base(binary),
		Changes: []string{
			`ENTRYPOINT ["/fibercut"]`,
			`CMD ["node"]`,
			"LABEL " + LabelImage + "=node",
			"ENV " + EnvDataDir + "=" + DataDir,
		},
	})
	if err != nil {
		return fmt.Errorf("lab: import node image %s: %w", ref, err)
	}
	defer rc.Close()
	msg, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("lab: import node image %s: %w", ref, err)
	}
	if bytes.Contains(msg, []byte(`"error"`)) {
		return fmt.Errorf("lab: import node image %s: %s", ref, msg)
	}
	return nil
}

// imageLayer returns a tar stream with the root file system of the node image.
func imageLayer(binary string) (io.Reader, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, fmt.Errorf("lab: read %s: %w", binary, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []struct {
		name string
		mode int64
	}{{"data/", 0o755}, {"tmp/", 0o1777}, {"etc/", 0o755}} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d.name, Mode: d.mode}); err != nil {
			return nil, fmt.Errorf("lab: image layer: %w", err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "fibercut", Mode: 0o755, Size: int64(len(bin))}); err != nil {
		return nil, fmt.Errorf("lab: image layer: %w", err)
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, fmt.Errorf("lab: image layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("lab: image layer: %w", err)
	}
	return &buf, nil
}
