/*
 * The wrappers' buffer checks, shared by every C extension: each wrapper validates its arguments
 * once, with these, before its kernels run (the kernels never validate).
 *
 *   buffer_acquire(obj, view, writable, name)
 *       a C-contiguous view of obj with its format (writable when asked); on failure a TypeError
 *       naming `name` ("X must be a C-contiguous, writable array"), -1, and view->obj NULL
 *   buffer_kind(view)
 *       the element type: 'f' float32, 'd' float64, 'i' int32, 'q' int64, 'H' any 2-byte word
 *       (fp16, bf16, uint16), 0 for anything else
 *   buffer_release(views, n)
 *       releases n views; a view that was never acquired (zeroed, or a failed acquire) is skipped
 */
#ifndef MPIREG_BUFFERS_H
#define MPIREG_BUFFERS_H

#include <Python.h>

static inline int buffer_acquire(PyObject *obj, Py_buffer *view, int writable, const char *name)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_ND | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) == 0) return 0;
    view->obj = NULL;
    PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous%s array", name, writable ? ", writable" : "");
    return -1;
}

static inline char buffer_kind(const Py_buffer *v)
{
    const char *f = v->format ? v->format : "B";
    if (*f == '@' || *f == '=' || *f == '<') f++;
    if (f[0] == '\0' || f[1] != '\0') return 0;
    switch (*f) {
    case 'f': return v->itemsize == 4 ? 'f' : 0;
    case 'd': return v->itemsize == 8 ? 'd' : 0;
    case 'i': case 'l': case 'q': return v->itemsize == 8 ? 'q' : v->itemsize == 4 ? 'i' : 0;
    case 'H': case 'h': case 'e': return v->itemsize == 2 ? 'H' : 0;
    default: return 0;
    }
}

static inline void buffer_release(Py_buffer *views, int n)
{
    for (int i = 0; i < n; i++)
        if (views[i].obj != NULL) PyBuffer_Release(&views[i]);
}

#endif
