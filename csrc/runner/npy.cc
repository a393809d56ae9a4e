// .npy parsing: magic, version, header dict (descr, fortran_order, shape), raw data.
#include "runner/npy.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace edgefit {

namespace {

std::string field(const std::string& header, const std::string& key) {
  const size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) throw std::runtime_error("npy header has no '" + key + "'");
  size_t v = header.find(':', k);
  if (v == std::string::npos) throw std::runtime_error("bad npy header");
  ++v;
  while (v < header.size() && header[v] == ' ') ++v;
  if (v >= header.size()) throw std::runtime_error("bad npy header");
  if (header[v] == '\'') {
    const size_t e = header.find('\'', v + 1);
    if (e == std::string::npos) throw std::runtime_error("bad npy header");
    return header.substr(v + 1, e - v - 1);
  }
  if (header[v] == '(') {
    const size_t e = header.find(')', v);
    if (e == std::string::npos) throw std::runtime_error("bad npy header");
    return header.substr(v + 1, e - v - 1);
  }
  const size_t e = header.find_first_of(",}", v);
  return header.substr(v, e - v);
}

}  // namespace

NpyArray read_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot open");
  char magic[8];
  if (!f.read(magic, 8) || std::string(magic, 6) != "\x93NUMPY")
    throw std::runtime_error(path + ": not a .npy file");
  size_t hlen = 0;
  if (magic[6] == 1) {
    uint8_t b[2];
    f.read(reinterpret_cast<char*>(b), 2);
    hlen = b[0] | (size_t(b[1]) << 8);
  } else {
    uint8_t b[4];
    f.read(reinterpret_cast<char*>(b), 4);
    hlen = b[0] | (size_t(b[1]) << 8) | (size_t(b[2]) << 16) | (size_t(b[3]) << 24);
  }
  if (!f || hlen > (1u << 20)) throw std::runtime_error(path + ": bad .npy header");
  std::string header(hlen, '\0');
  f.read(header.data(), std::streamsize(hlen));
  NpyArray a;
  a.descr = field(header, "descr");
  if (a.descr != "<f4" && a.descr != "|u1")
    throw std::runtime_error(path + ": dtype " + a.descr + " (float32 or uint8 only)");
  if (field(header, "fortran_order").find("False") == std::string::npos)
    throw std::runtime_error(path + ": Fortran-order arrays are not supported");
  std::stringstream dims(field(header, "shape"));
  std::string tok;
  size_t numel = 1;
  while (std::getline(dims, tok, ',')) {
    if (tok.find_first_not_of(' ') == std::string::npos) continue;
    a.shape.push_back(std::stoll(tok));
    numel *= size_t(a.shape.back());
  }
  a.data.resize(numel * (a.descr == "<f4" ? 4 : 1));
  if (!f.read(reinterpret_cast<char*>(a.data.data()), std::streamsize(a.data.size())))
    throw std::runtime_error(path + ": truncated .npy data");
  return a;
}

void write_npy(const std::string& path, const NpyArray& a) {
  std::string shape;
  for (size_t i = 0; i < a.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(a.shape[i]);
  if (a.shape.size() == 1) shape += ",";
  std::string header =
      "{'descr': '" + a.descr + "', 'fortran_order': False, 'shape': (" + shape + "), }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    if (!f) throw std::runtime_error(path + ": cannot write");
    f.write("\x93NUMPY\x01\x00", 8);
    const uint16_t hl = uint16_t(header.size());
    const char b[2] = {char(hl & 0xFF), char(hl >> 8)};
    f.write(b, 2);
    f.write(header.data(), std::streamsize(header.size()));
    f.write(reinterpret_cast<const char*>(a.data.data()), std::streamsize(a.data.size()));
    if (!f) throw std::runtime_error(path + ": write failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error(path + ": rename failed");
}

}  // namespace edgefit
