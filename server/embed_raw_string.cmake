# Turns a text file into a C++ raw string literal that a source file #includes:
#   constexpr std::string_view page =
#   #include "docs_page.html.inc"
#       ;
# Run at build time (server/CMakeLists.txt):  cmake -DINPUT=file -DOUTPUT=file.inc -P this
# The text is copied byte for byte; it must not hold the literal's closing delimiter.
set(delimiter "shardurl_embed")
file(READ "${INPUT}" text)
string(FIND "${text}" ")${delimiter}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} holds )${delimiter}\", which would end the raw string literal")
endif()
file(WRITE "${OUTPUT}" "R\"${delimiter}(${text})${delimiter}\"\n")
