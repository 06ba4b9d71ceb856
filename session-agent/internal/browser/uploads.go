package browser

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"berth/session-agent/internal/agent"
)

// serveUpload answers PUT /.berth/uploads/<name>: the raw body becomes a file in the uploads
// directory, and the answer gives its path inside the container, which is what a client
// passes to DOM.setFileInputFiles (the browser reads files from its own file system).
func (s *Service) serveUpload(w http.ResponseWriter, r *http.Request, name string) {
	if r.Method != http.MethodPut {
		w.Header().Set("Allow", "PUT")
		agent.WriteError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if err := validName(name); err != nil {
		agent.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	max, _ := s.limits()
	tooLarge := fmt.Sprintf("upload is larger than the %d byte cap", max)
	if r.ContentLength > max {
		agent.WriteError(w, http.StatusRequestEntityTooLarge, tooLarge)
		return
	}
	// Written under a hidden temporary name (validName never accepts a leading dot) and
	// renamed when complete, so a half-written file is never offered to the browser.
	tmp, err := os.CreateTemp(s.cfg.UploadDir, ".upload-*")
	if err != nil {
		agent.WriteError(w, http.StatusInternalServerError, "cannot store the upload")
		return
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	n, err := io.Copy(tmp, http.MaxBytesReader(w, r.Body, max))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		agent.WriteError(w, http.StatusRequestEntityTooLarge, tooLarge)
		return
	case err != nil:
		agent.WriteError(w, http.StatusBadRequest, "upload interrupted")
		return
	}
	path := filepath.Join(s.cfg.UploadDir, name)
	status := http.StatusCreated
	if _, err := os.Lstat(path); err == nil {
		status = http.StatusOK // replaced
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		agent.WriteError(w, http.StatusInternalServerError, "cannot store the upload")
		return
	}
	agent.Log("info", "upload stored", map[string]any{"name": name, "bytes": n})
	agent.WriteJSON(w, status, map[string]any{"path": path, "size": n})
}
