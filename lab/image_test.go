package lab

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestIsStatic builds the same tiny program with and without cgo and checks
// that only the cgo one is reported as dynamically linked.
func TestIsStatic(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go toolchain")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	prog := "package main\n\n// #include <stdlib.h>\nimport \"C\"\n\nfunc main() { C.abs(1) }\n"
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	build := func(cgo, out string) string {
		cmd := exec.Command("go", "build", "-o", out, src)
		cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo, "GOFLAGS=")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Skipf("cannot build test program with CGO_ENABLED=%s: %v\n%s", cgo, err, b)
		}
		return out
	}
	dyn := build("1", filepath.Join(dir, "dyn"))
	if static, err := IsStatic(dyn); err != nil || static {
		t.Errorf("IsStatic(cgo binary) = %v, %v; want false", static, err)
	}
	// Without cgo the import "C" file is excluded; write a pure program.
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := build("0", filepath.Join(dir, "static"))
	if static, err := IsStatic(st); err != nil || !static {
		t.Errorf("IsStatic(CGO_ENABLED=0 binary) = %v, %v; want true", static, err)
	}
	if _, err := IsStatic(src); err == nil {
		t.Error("IsStatic(a Go source file) = nil error, want one")
	}
}

func TestEnsureImageRefusesDynamicBinary(t *testing.T) {
	// /bin/sh is dynamically linked on every Debian; EnsureImage must refuse
	// it before talking to Docker (the nil client would panic otherwise).
	static, err := IsStatic("/bin/sh")
	if err != nil || static {
		t.Skip("/bin/sh is not a dynamic ELF here")
	}
	_, err = EnsureImage(t.Context(), nil, "/bin/sh")
	if !errors.Is(err, ErrDynamicBinary) {
		t.Fatalf("EnsureImage(/bin/sh) = %v, want ErrDynamicBinary", err)
	}
}
