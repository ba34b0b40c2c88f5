/*
 * mpireg._cparse: libsvm/svmlight lines to CSR arrays, in one pass over the bytes.
 *
 *   svmlight(text, max_entries) -> (labels, counts, indices, values) or the 0-based number of
 *       the first line that does not parse, as an int
 *
 * `text` holds whole lines ("label index:value ...", '\n'-terminated, comments already
 * removed), as the streamed converter (mpireg/data/stream.py) hands them over a chunk at a time.
 * NumPy's text parser goes through every number as a separate token; here labels and values go
 * through strtod and indices through strtoll straight into the output arrays (qid: tokens are
 * skipped), several times faster and with no Python object per token.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *skip_blanks(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
    return p;
}

/* Parses lines into the arrays; returns -1 when all parse, else the bad line's number. */
static Py_ssize_t parse(const char *p, const char *end, double *labels, int64_t *counts,
                        int64_t *indices, double *values, Py_ssize_t max_entries, Py_ssize_t *rows,
                        Py_ssize_t *entries) {
    Py_ssize_t row = 0, k = 0;
    while (p < end) {
        p = skip_blanks(p, end);
        if (p < end && *p == '\n') { p++; continue; }  /* a blank line */
        if (p >= end) break;
        char *next;
        labels[row] = strtod(p, &next);
        if (next == p) return row;
        p = next;
        int64_t count = 0;
        for (;;) {
            p = skip_blanks(p, end);
            if (p >= end || *p == '\n') break;
            if (end - p > 4 && memcmp(p, "qid:", 4) == 0) {  /* a ranking id: not a feature */
                while (p < end && *p != ' ' && *p != '\t' && *p != '\n') p++;
                continue;
            }
            long long index = strtoll(p, &next, 10);
            if (next == p || *next != ':' || index < 0 || k >= max_entries) return row;
            p = next + 1;
            double value = strtod(p, &next);
            if (next == p || (next < end && *next != ' ' && *next != '\t' && *next != '\n' && *next != '\r'))
                return row;
            p = next;
            indices[k] = index;
            values[k] = value;
            k++;
            count++;
        }
        counts[row++] = count;
        if (p < end) p++;  /* the newline */
    }
    *rows = row;
    *entries = k;
    return -1;
}

static PyObject *py_svmlight(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer text;
    Py_ssize_t max_rows, max_entries;
    PyObject *labels_o, *counts_o, *indices_o, *values_o;
    if (!PyArg_ParseTuple(args, "y*nnOOOO", &text, &max_rows, &max_entries, &labels_o, &counts_o,
                          &indices_o, &values_o))
        return NULL;
    Py_buffer b[4];
    PyObject *objs[4] = {labels_o, counts_o, indices_o, values_o};
    int got = 0;
    for (; got < 4; got++)
        if (PyObject_GetBuffer(objs[got], &b[got], PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) break;
    PyObject *result = NULL;
    if (got == 4) {
        if (b[0].len < max_rows * 8 || b[1].len < max_rows * 8 || b[2].len < max_entries * 8 ||
            b[3].len < max_entries * 8) {
            PyErr_SetString(PyExc_ValueError, "output arrays are smaller than max_rows / max_entries");
        } else {
            Py_ssize_t rows = 0, entries = 0, bad;
            const char *start = text.buf;
            Py_BEGIN_ALLOW_THREADS
            bad = parse(start, start + text.len, b[0].buf, b[1].buf, b[2].buf, b[3].buf, max_entries,
                        &rows, &entries);
            Py_END_ALLOW_THREADS
            result = bad >= 0 ? Py_BuildValue("(On)", Py_None, bad) : Py_BuildValue("(nn)", rows, entries);
        }
    }
    for (int i = 0; i < got; i++) PyBuffer_Release(&b[i]);
    PyBuffer_Release(&text);
    return result;
}

static PyMethodDef methods[] = {
    {"svmlight", py_svmlight, METH_VARARGS,
     "svmlight(text, max_rows, max_entries, labels, counts, indices, values) -> (rows, entries),\n"
     "or (None, k) when data line k (0-based) does not parse. Outputs: float64, int64, int64,\n"
     "float64 arrays at least max_rows / max_entries long."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cparse", "libsvm text to CSR arrays.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cparse(void) { return PyModule_Create(&module); }
