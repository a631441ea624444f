// Oracle for sealkit's restricted Go-template renderer: reads JSON lines
// {"t": template, "d": {key: base64 value}} and prints JSON lines {"ok": base64 out} or {"err": msg}.
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

type req struct {
	T string            `json:"t"`
	D map[string]string `json:"d"`
}

func main() {
	funcs := sprig.GenericFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	delete(funcs, "getHostByName")
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	out := json.NewEncoder(os.Stdout)
	for sc.Scan() {
		var r req
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			out.Encode(map[string]string{"err": err.Error()})
			continue
		}
		data := map[string]string{}
		for k, v := range r.D {
			b, _ := base64.StdEncoding.DecodeString(v)
			data[k] = string(b)
		}
		t, err := template.New("k").Funcs(funcs).Parse(r.T)
		if err != nil {
			out.Encode(map[string]string{"err": err.Error()})
			continue
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			out.Encode(map[string]string{"err": err.Error()})
			continue
		}
		out.Encode(map[string]string{"ok": base64.StdEncoding.EncodeToString(buf.Bytes())})
	}
}
