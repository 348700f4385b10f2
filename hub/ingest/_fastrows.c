/* The hub's ingest hot path in one C pass: a version 2 telemetry series (contract/codecs/telemetry.py) checked
 * and turned into line protocol.
 *
 *   lines(rows: str, seps: tuple[str, ...]) -> (text, n, bounds, newest, newest_values) | None
 *
 * ``seps`` holds one separator per column (width = len(seps) >= 2): what goes before each item of a row, e.g.
 * ("<head> laeq=", ",lafmax=", " ") for two fields and the timestamp; rows are joined with "\n". ``bounds`` is
 * [(min, max)] per column (floats for the values, ints for the timestamp column), ``newest`` the index of the
 * first row with the largest timestamp and ``newest_values`` that row's values (floats, timestamp left out).
 *
 * It accepts only what the pure-Python path (parse_cells + series_lines) accepts with the same result, and
 * returns None for everything else, however harmless (non-ASCII rows, an item over 40 characters, a value that
 * overflows a double, a timestamp that is not plain digits): the caller then takes the Python path, which
 * decides and counts the reason. tests/ingest/test_fastrows.py holds it against that path (hypothesis). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

#define MAX_CELL 40
#define MAX_WIDTH 256
#define TS_MAX 9999999999999LL

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static const double POW10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                               1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* A JSON number exactly filling [p, end): -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?  Returns 0 if it is
 * not one; else 1, with its value in *out when it is exact in Clinger's fast path (at most 15 significant
 * digits, a decimal exponent within +-22: one correctly rounded IEEE multiplication or division), or 2 when
 * the caller must convert it with Python's own correctly rounded parser. */
static int json_number(const char *p, const char *end, double *out) {
    int neg = 0, digits = 0, exp10 = 0, eneg = 0, e = 0;
    unsigned long long m = 0;
    if (p < end && *p == '-') { neg = 1; p++; }
    if (p >= end) return 0;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') {
        while (p < end && is_digit(*p)) { if (digits < 19) m = m * 10 + (unsigned)(*p - '0'); else exp10++; digits++; p++; }
    }
    else return 0;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p)) return 0;
        while (p < end && is_digit(*p)) {
            if (digits < 19) { m = m * 10 + (unsigned)(*p - '0'); exp10--; }
            if (m) digits++;
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) { eneg = *p == '-'; p++; }
        if (p >= end || !is_digit(*p)) return 0;
        while (p < end && is_digit(*p)) { if (e < 10000) e = e * 10 + (*p - '0'); p++; }
    }
    if (p != end) return 0;
    exp10 += eneg ? -e : e;
    if (digits > 15 || m > (1ULL << 53) || exp10 < -22 || exp10 > 22) return 2;
    double v = (double)m;
    v = exp10 < 0 ? v / POW10[-exp10] : v * POW10[exp10];
    *out = neg ? -v : v;
    return 1;
}

static PyObject *lines(PyObject *self, PyObject *args) {
    PyObject *rows, *seps;
    if (!PyArg_ParseTuple(args, "UO!:lines", &rows, &PyTuple_Type, &seps)) return NULL;
    Py_ssize_t width = PyTuple_GET_SIZE(seps);
    if (width < 2 || width > MAX_WIDTH || !PyUnicode_IS_ASCII(rows)) Py_RETURN_NONE;
    const char *sep[MAX_WIDTH];
    Py_ssize_t seplen[MAX_WIDTH];
    Py_ssize_t sepsum = 0;
    int ascii = 1;
    for (Py_ssize_t k = 0; k < width; k++) {
        PyObject *s = PyTuple_GET_ITEM(seps, k);
        if (!PyUnicode_Check(s)) {
            PyErr_SetString(PyExc_TypeError, "seps must be str");
            return NULL;
        }
        if (!PyUnicode_IS_ASCII(s)) ascii = 0;
        sep[k] = PyUnicode_AsUTF8AndSize(s, &seplen[k]);
        if (sep[k] == NULL) return NULL;
        sepsum += seplen[k];
    }

    const char *s = (const char *)PyUnicode_1BYTE_DATA(rows);
    Py_ssize_t len = PyUnicode_GET_LENGTH(rows);
    if (len == 0) Py_RETURN_NONE;
    double lo[MAX_WIDTH], hi[MAX_WIDTH], cur[MAX_WIDTH], best[MAX_WIDTH];
    long long tlo = 0, thi = -1;
    Py_ssize_t n = 0, newest = 0, col = 0;
    const char *p = s, *end = s + len;

    /* pass 1: check every item and its delimiter, and take each column's extremes */
    for (;;) {
        const char *c = p;
        while (p < end && *p != ',' && *p != '\n') p++;
        Py_ssize_t cl = p - c;
        if (cl == 0 || cl > MAX_CELL) Py_RETURN_NONE;
        if (col < width - 1) {
            double v = 0.0;
            int kind = json_number(c, p, &v);
            if (kind == 0) Py_RETURN_NONE;
            if (kind == 2) {
                char *stop = NULL;
                v = PyOS_string_to_double(c, &stop, NULL);  /* locale-free; +-inf on overflow */
                if (v == -1.0 && PyErr_Occurred()) return NULL;
                if (stop != p) Py_RETURN_NONE;
            }
            if (!isfinite(v)) Py_RETURN_NONE;
            cur[col] = v;
            if (n == 0) { lo[col] = v; hi[col] = v; }
            else { if (v < lo[col]) lo[col] = v; if (v > hi[col]) hi[col] = v; }
            if (p >= end || *p != ',') Py_RETURN_NONE;  /* a row ends only after its timestamp */
            col++;
            p++;
            continue;
        }
        /* the timestamp: plain digits, no leading zero, at most 13 of them */
        if (cl > 13 || (cl > 1 && *c == '0')) Py_RETURN_NONE;
        long long t = 0;
        for (const char *q = c; q < p; q++) {
            if (!is_digit(*q)) Py_RETURN_NONE;
            t = t * 10 + (*q - '0');
        }
        if (t > TS_MAX) Py_RETURN_NONE;
        if (n == 0 || t > thi) {
            thi = t;
            newest = n;
            memcpy(best, cur, sizeof(double) * (size_t)(width - 1));
        }
        if (n == 0 || t < tlo) tlo = t;
        n++;
        col = 0;
        if (p >= end) break;
        if (*p != '\n' || p + 1 >= end) Py_RETURN_NONE;  /* a comma after the timestamp, or a trailing newline */
        p++;
    }

    /* pass 2: the lines, the items as they came, each after its separator */
    Py_ssize_t items = len - n * (width - 1) - (n - 1);  /* characters of the items */
    Py_ssize_t out_len = n * sepsum + items + (n - 1);
    PyObject *text;
    char *buf, *o;
    char *scratch = NULL;
    if (ascii) {
        text = PyUnicode_New(out_len, 127);
        if (text == NULL) return NULL;
        buf = (char *)PyUnicode_1BYTE_DATA(text);
    } else {
        scratch = PyMem_Malloc(out_len > 0 ? out_len : 1);
        if (scratch == NULL) return PyErr_NoMemory();
        buf = scratch;
        text = NULL;
    }
    o = buf;
    col = 0;
    memcpy(o, sep[0], seplen[0]);
    o += seplen[0];
    for (p = s; p < end; p++) {
        char ch = *p;
        if (ch == ',') {
            col++;
            memcpy(o, sep[col], seplen[col]);
            o += seplen[col];
        } else if (ch == '\n') {
            *o++ = '\n';
            col = 0;
            memcpy(o, sep[0], seplen[0]);
            o += seplen[0];
        } else {
            *o++ = ch;
        }
    }
    if (o - buf != out_len) {  /* cannot happen after pass 1; never hand out a wrong length */
        Py_XDECREF(text);
        PyMem_Free(scratch);
        PyErr_SetString(PyExc_SystemError, "_fastrows: length mismatch");
        return NULL;
    }
    if (!ascii) {
        text = PyUnicode_DecodeUTF8(scratch, out_len, "strict");
        PyMem_Free(scratch);
        if (text == NULL) return NULL;
    }

    PyObject *bounds = PyList_New(width);
    if (bounds == NULL) { Py_DECREF(text); return NULL; }
    for (Py_ssize_t k = 0; k < width; k++) {
        PyObject *pair = k < width - 1 ? Py_BuildValue("(dd)", lo[k], hi[k]) : Py_BuildValue("(LL)", tlo, thi);
        if (pair == NULL) { Py_DECREF(bounds); Py_DECREF(text); return NULL; }
        PyList_SET_ITEM(bounds, k, pair);
    }
    PyObject *row = PyList_New(width - 1);
    if (row == NULL) { Py_DECREF(bounds); Py_DECREF(text); return NULL; }
    for (Py_ssize_t k = 0; k < width - 1; k++) {
        PyObject *v = PyFloat_FromDouble(best[k]);
        if (v == NULL) { Py_DECREF(row); Py_DECREF(bounds); Py_DECREF(text); return NULL; }
        PyList_SET_ITEM(row, k, v);
    }
    return Py_BuildValue("(NnNnN)", text, n, bounds, newest, row);
}

static PyMethodDef methods[] = {
    {"lines", lines, METH_VARARGS, "lines(rows, seps) -> (text, n, bounds, newest, newest_values) | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastrows", NULL, -1, methods};

PyMODINIT_FUNC PyInit__fastrows(void) { return PyModule_Create(&module); }
